"""The model formats, one table (as ultralytics' export_formats()): each format's name, its file in a
run folder, the model files that hold it, how it is written, how it is run, and what it needs.
config, export, infer, the CLI, bench/infer_speed.py and the tests all read it. A new format is one
entry here and two functions: its converter (signtrain.export.convert) and its runner (signtrain.export.infer).
"""

import dataclasses
import functools
import importlib.util
import os


@dataclasses.dataclass(frozen=True)
class Format:
    name: str  # what --format and --export call it
    file: str  # its name in a run folder
    suffixes: tuple  # model files that hold it, by extension (a SavedModel is a folder: none)
    export: object  # converter: (keras model, path) -> path; None for the .h5 every run writes
    load: object  # runner: (path, threads) -> predict, probabilities = predict(X)
    needs: tuple = ()  # modules its converter and runtime need beyond TensorFlow (signtrain[export])
    about: str = ""  # one line for the CLI help


@functools.lru_cache(maxsize=None)
def export_formats():
    """The table: the Keras .h5 the live app loads, then the exports."""
    from signtrain import config
    from signtrain.export import convert as export, infer

    return (
        Format("keras", config.MODEL_FILE, (".h5", ".keras"), None, infer.load_keras, (),
               "the Keras 3 / Keras 2 .h5 every run writes"),
        Format("savedmodel", config.SAVEDMODEL_DIR, (), export.export_savedmodel, infer.load_savedmodel, (),
               f"{config.SAVEDMODEL_DIR}/ (every run writes it; --export checks it)"),
        Format("onnx", "action_model.onnx", (".onnx",), export.export_onnx, infer.load_onnx,
               ("tf2onnx", "onnx", "onnxruntime"), "action_model.onnx (any batch size)"),
        Format("tflite", "action_model.tflite", (".tflite",), export.export_tflite, infer.load_tflite, (),
               "action_model.tflite (builtin ops, one sequence per call)"),
    )


def names():
    return tuple(entry.name for entry in export_formats())


def export_names():
    """The formats `--export` and `signtrain export --format` write."""
    return tuple(entry.name for entry in export_formats() if entry.export is not None)


def get(name):
    return next(entry for entry in export_formats() if entry.name == name)


def parse(text):
    """'onnx,tflite' -> ["onnx", "tflite"], with an error that lists the choices."""
    chosen = [name.strip().lower() for name in str(text).split(",") if name.strip()]
    unknown = [name for name in chosen if name not in export_names()]
    if unknown or not chosen:
        raise ValueError(f"unknown export format {', '.join(unknown) or repr(text)}: choose from "
                         f"{', '.join(export_names())} (comma-separated, e.g. --export onnx,tflite)")
    return list(dict.fromkeys(chosen))


def require(chosen):
    """Fail before training, not after it, when a format's converter or runtime is not installed."""
    missing = [module for name in chosen for module in get(name).needs if importlib.util.find_spec(module) is None]
    if missing:
        raise ImportError(f"--export {','.join(chosen)} needs {', '.join(missing)}: pip install 'signtrain[export]'")


def of_path(path):
    """The format a model path holds, from its name (a folder: a SavedModel)."""
    readable = ", ".join(suffix for entry in export_formats() for suffix in entry.suffixes)
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "saved_model.pb")):
            return "savedmodel"
        raise ValueError(f"{path} is a folder without saved_model.pb: not a SavedModel. Pass a run folder with "
                         f"--model, or a model file ({readable})")
    extension = os.path.splitext(path)[1].lower()
    for entry in export_formats():
        if extension in entry.suffixes:
            return entry.name
    raise ValueError(f"{path}: unknown model file type {extension!r}; signtrain reads {readable} files and "
                     f"SavedModel folders")
