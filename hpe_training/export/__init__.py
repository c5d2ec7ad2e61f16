"""Export of trained models to ONNX (and TensorRT engines): ``hpe-export``."""
