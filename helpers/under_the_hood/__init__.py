"""What runtimes do inside, and the suite's models from C++.

- :mod:`.profiling`  per-operator profiles of ONNX Runtime, PyTorch and OpenVINO in one table
- :mod:`.custom_ops` a custom operator from ``torch.library`` to ONNX Runtime and ``onnx.reference``
- :mod:`.cpp`        build and run the C++ consumers (TorchScript, AOTInductor, ONNX Runtime)
"""
