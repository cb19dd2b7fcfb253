"""Ways into the IR: the Python DSL (and, later, ONNX import)."""
