"""Embedders: the registry resolving a model by name, the bundled and ONNX models, word pieces, pooling, the fake."""
