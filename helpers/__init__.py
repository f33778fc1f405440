"""Shared plumbing for the PyTorch inference tutorial notebooks.

One module per concept, imports running one way (a test builds the import graph and fails on a
cycle); notebooks import what they teach with and keep their cells short. The top level is the
toolbox a learner meets in the notebooks; the course machinery lives in ``course/``.

Foundations (import nothing else from the package but each other):

- ``paths``          where generated files go (one git-ignored output folder) and the model cache
- ``display``        banners, tables and progress bars that render in Jupyter (progress bars keep
                     their final state in saved notebooks) and read well as plain text
- ``hardware``       machine facts: CPU model and flags, GPU, package versions, ONNX Runtime package
- ``cache``          content-checked build folders, model digests, the one export cache
- ``precisions``     one name per numeric precision (fp32, bf16, int8 …), however it is spelled

Running and measuring models:

- ``runners/``       one interface over PyTorch, TorchScript, torch.export/AOTI, ONNX Runtime and
                     OpenVINO (latency and throughput runners), and the runtime registry: one
                     ``RuntimeSpec`` per runtime, ``available_runtimes``, ``for_runtime`` (one
                     configured runner per runtime key), ``runtime_specs``
- ``benchmark/``     every timing loop (latency, items/s with requests in flight, interleaved
                     rounds, best-of probes), the machine's measured limits, comparison tables
                     and charts
- ``parity``         numeric and task-level comparison of runners
- ``envreport``      report: which environment, runtimes and execution providers really work here
- ``export``         ONNX export and graph inspection (operator histogram, sizes in MiB)
- ``quantize/``      INT8 quantization: ONNX Runtime's static (QDQ, calibrated) and dynamic recipes
                     with checks, NNCF, named recipes, u8 x s8 saturation, agreement next to speed
- ``openvino_tools/`` OpenVINO beyond one request: the compile cache, ``benchmark_app`` run and
                     parsed, what ``AUTO`` picked
- ``under_the_hood/`` per-operator profiles, a custom operator to ONNX, the C++ consumers

Models and tasks:

- ``catalog``        canonical / offline-real / tiny models behind one call; one ``TaskRecord``
                     per task, registered from ``models/<task>``
- ``models/``        where models come from: the task records and their loaders (one module per
                     task), hub and caches, models shipped on PyPI, tiny models, sentence embeddings
- ``images``         photos, labels, preprocessing with and without torch, softmax and top-k
- ``classify``       the image-classification application, identical on every runner
- ``qa/``            extractive question answering, SQuAD metrics, the offline QA model
- ``generation/``    autoregressive generation on ONNX Runtime: KV-cache export, tokens, the loop

Serving:

- ``serving/``       the FastAPI app around one model, shared limits, KServe v2, Ray Serve and Ray
                     Data, a Triton model repository, bounded load tests

Your own model:

- ``model_report/``  the capstone: any PyTorch model (or ONNX file) to every runtime here — parity,
                     quality, latency against the machine's limit, a recommendation with deploy
                     code; the ``inference-report`` command

The course around the notebooks:

- ``course/``        settings per run profile, key results, notebook metadata, the main job
                     (``series``), output checks, the rendered site, classroom widgets, exercises
- ``kernels``        the environments' Jupyter kernel names, the notebooks' standard kernelspec
                     (standard library only: scripts/suite.py reads it before helpers is installed)
"""

__version__ = "0.1.0"
