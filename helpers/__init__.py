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
"""

__version__ = "0.1.0"
