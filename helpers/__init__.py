"""Shared plumbing for the PyTorch inference tutorial notebooks.

One module per concept, imports running one way (a test builds the import graph and fails on a
cycle); notebooks import what they teach with and keep their cells short.

Foundations (import nothing else from the package but each other):

- ``paths``          where generated files go (one git-ignored output folder) and the model cache
- ``settings``       notebook settings that follow the run profile (papermill-style)
- ``display``        banners and tables that render in Jupyter and read well as plain text
- ``results``        key results a notebook records for the main job's summary; JSON conversion
- ``hardware``       machine facts: CPU model and flags, GPU, package versions, ONNX Runtime package
- ``cache``          content-checked build folders, model digests, the one export cache
- ``hub``            where model files come from: hub caches, a classroom folder, the network

Running and measuring models:

- ``runners/``       one interface over PyTorch, TorchScript, torch.export/AOTI, ONNX Runtime and
                     OpenVINO, and ``for_runtime`` (one configured runner per runtime key)
- ``benchmark/``     every timing loop (latency, items/s with requests in flight, interleaved
                     rounds, best-of probes), the machine's measured limits, comparison tables
                     and charts
- ``parity``         numeric and task-level comparison of runners
- ``precisions``     one name per numeric precision (fp32, bf16, int8 …), however it is spelled
- ``envreport``      report: which environment, runtimes and execution providers really work here
- ``export``         ONNX export and graph inspection (operator histogram, sizes in MiB)
- ``quantize``       ONNX Runtime INT8 quantization (static QDQ with calibration, dynamic)
- ``profiling``      per-operator profiles of ONNX Runtime, PyTorch and OpenVINO
- ``custom_ops``     custom operators from PyTorch to ONNX
- ``openvino_tools/`` OpenVINO beyond one request: a thread-safe throughput runner, the compile
                     cache, ``benchmark_app`` run and parsed, what ``AUTO`` picked

Models and tasks:

- ``catalog``        canonical / offline-real / tiny models behind one call
- ``packaged_models`` real pretrained models shipped inside PyPI packages: files and loading
- ``tiny_models``    tiny hand-written models (one lesson point each) and a tiny ONNX classifier
- ``images``         photos, labels, preprocessing with and without torch, softmax and top-k
- ``classify``       the image-classification application, identical on every runner
- ``qa``             extractive question answering: offsets, spans, sliding windows
- ``qa_facts``       facts that ship on PyPI (countries, cities, chemical elements) as records
- ``qa_paragraphs``  paragraphs stating those facts, with the answer span of each question
- ``qa_dataset``     a small SQuAD-format QA data set generated from them, split by entity
- ``qa_finetune``    MiniLM-L6 fine-tuned on those facts: a QA model that answers offline
- ``squad_metrics``  SQuAD exact match and token F1
- ``qa_speed``       QA at BERT-base size: fused ORT graphs, bf16, INT8 runners for timing
- ``embeddings``     sentence embeddings: mean pooling (eager and in-graph), cosine similarity
- ``generation/``    autoregressive generation on ONNX Runtime: KV-cache export, tokens, the loop

Serving:

- ``serving``        the FastAPI app around one ONNX model (HTTP only), uvicorn in the background
- ``serving_limits`` limits both servers share: strict JSON, body size and deadlines, a pixel budget
- ``ray_serving``    a local Ray cluster, Ray Serve deploying the same app, Ray Data
- ``kserve``         the KServe v2 / Open Inference Protocol router and client
- ``triton``         a Triton Inference Server model repository
- ``loadtest``       bounded loopback load tests

The suite around the notebooks:

- ``cpp``            build and run the C++ consumers (TorchScript, AOTInductor, ONNX Runtime)
- ``kernels``        the environments' Jupyter kernel names, the notebooks' standard kernelspec
- ``widgets``        ipywidgets for classroom use
- ``exercises/``     exercises with automatic checks (``nbNN.py``: one notebook's exercises)
- ``output_checks``  checks that an executed notebook's outputs are clean
- ``series``         the main job: execute the notebooks, write the summary
- ``site``           render executed notebooks to HTML with an index
"""

__version__ = "0.1.0"
