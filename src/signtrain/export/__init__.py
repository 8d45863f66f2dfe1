"""A trained model in the formats the live app and other runtimes load, and run from any of them.

formats   one table of formats (name, file, exporter, runner), as ultralytics' export_formats()
convert   `signtrain export`: SavedModel, ONNX, TFLite, each checked against the Keras model
h5compat  an .h5 that loads in Keras 3 and in Keras 2
infer     `signtrain predict`: a model run in any of the formats
"""

from signtrain.export import convert, formats, h5compat, infer

__all__ = ["convert", "formats", "h5compat", "infer"]
