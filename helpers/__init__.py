"""Shared plumbing for the PyTorch inference tutorial notebooks.

One module per concept; notebooks import what they teach with and keep their cells short:

- ``paths``      where generated files go (one git-ignored output folder) and the model cache
- ``display``    banners and tables that render in Jupyter and read well as plain text
- ``results``    key results a notebook records for the main job's summary
- ``envreport``  which environment, runtimes, execution providers and hardware this kernel has
- ``runners``    one interface over PyTorch, TorchScript, torch.export/AOTI, ONNX Runtime, OpenVINO
- ``benchmark``  honest latency measurement (warm-up, percentiles, fingerprint, charts)
- ``hardware``   machine fingerprint and measured peaks (GEMM FLOP/s, memory bandwidth)
- ``parity``     numeric and task-level comparison of runners
- ``export``     ONNX export and graph inspection
- ``catalog``    canonical / offline-real / tiny models behind one call
- ``images``     sample photos, labels, preprocessing with and without torch
- ``classify``   the image-classification application, identical on every runner
- ``quantize``   ONNX Runtime INT8 quantization (static QDQ with calibration, dynamic)
- ``qa``         extractive question answering: offsets, spans, sliding windows
- ``generation`` autoregressive generation on ONNX Runtime with a KV cache
- ``serving``    a FastAPI endpoint, Ray Serve and Ray Data around one ONNX model
- ``loadtest``   bounded loopback load tests
- ``triton``     a Triton Inference Server model repository
- ``toy_models`` small models that show one behaviour each (dropout, control flow)
- ``cpp``        build and run the C++ TorchScript consumer
- ``widgets``    ipywidgets for classroom use
- ``exercises``  exercises with automatic checks
- ``series``     the main job: execute the notebooks, write the summary
- ``site``       render executed notebooks to HTML with an index
"""

__version__ = "0.1.0"
