"""Run a trained model in any shipped format: Keras (.h5/.keras), SavedModel, ONNX, TFLite (the
runners of signtrain.export.formats' table).

`load_predictor(path, format)` returns one function, probabilities = predict(X) for a
(n, 30, 1662) float array, whatever runs underneath: `signtrain predict`, the export checks and
bench/infer_speed.py all go through it, so they measure and check the same code.
"""

import os

import numpy as np

from signtrain import config
from signtrain.data import dataset as data
from signtrain.data.frames import BEYOND_CAMERA, beyond_camera

def _with_features(predict, features):
    """Attach the frame width the model takes (None: unknown) to a predict function."""
    predict.features = int(features) if isinstance(features, (int, np.integer)) and features > 0 else None
    return predict


def keras_predict(model):
    """Keras' model.predict: what most tutorials call in the live loop (one call ~45 ms)."""
    return _with_features(lambda X: model.predict(np.asarray(X, dtype=np.float32), verbose=0), model.input_shape[-1])


def keras_compiled(model):
    """The same Keras model called through one traced tf.function: no predict() machinery per call."""
    import tensorflow as tf

    _, frames, features = model.input_shape
    call = tf.function(lambda x: model(x, training=False), reduce_retracing=True,
                       input_signature=[tf.TensorSpec([None, frames, features], tf.float32)])
    return _with_features(lambda X: call(np.asarray(X, dtype=np.float32)).numpy(), features)


def load_savedmodel(path, threads=None):
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    serve = loaded.serve if hasattr(loaded, "serve") else loaded.signatures["serving_default"]

    def predict(X, _keep=loaded):  # the loaded object owns the variables: keep it alive with the function
        output = serve(tf.constant(np.asarray(X, dtype=np.float32)))
        if isinstance(output, dict):  # a signature returns {name: tensor}
            output = next(iter(output.values()))
        return output.numpy()

    try:
        features = serve.structured_input_signature[0][0].shape[-1]
    except (AttributeError, IndexError, TypeError):
        features = None
    return _with_features(predict, features)


def load_onnx(path, threads=None):
    try:
        import onnxruntime
    except ImportError:
        raise ImportError("running an .onnx model needs onnxruntime: pip install 'signtrain[export]'") from None
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    source = session.get_inputs()[0]
    return _with_features(lambda X: session.run(None, {source.name: np.asarray(X, dtype=np.float32)})[0],
                          source.shape[-1])


def _tflite_interpreter(path, threads=None):
    try:  # LiteRT is TFLite's runtime now; tf.lite.Interpreter is deprecated in TensorFlow 2.20+
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    return Interpreter(model_path=path, num_threads=threads)


def load_tflite(path, threads=None):
    """The TFLite file takes one sequence per call (its batch size is fixed at 1): rows one by one."""
    interpreter = _tflite_interpreter(path, threads)
    interpreter.allocate_tensors()
    details = interpreter.get_input_details()[0]
    source, target = details["index"], interpreter.get_output_details()[0]["index"]

    def predict(X):
        outputs = []
        for row in np.asarray(X, dtype=np.float32):
            interpreter.set_tensor(source, row[None])
            interpreter.invoke()
            outputs.append(interpreter.get_tensor(target)[0].copy())
        return np.stack(outputs)

    return _with_features(predict, details["shape"][-1])


def load_keras(path, threads=None):
    from signtrain.model import network as model_lib

    return keras_predict(model_lib.load_model(path))


def load_predictor(path, model_format=None, threads=None):
    """probabilities = predict(X) for the model at path (format from the name unless given)."""
    from signtrain.export import formats

    model_format = model_format or formats.of_path(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found")
    if model_format not in formats.names():
        raise ValueError(f"unknown model format {model_format!r}; choose from {', '.join(formats.names())}")
    return formats.get(model_format).load(path, threads)


def find_model(model, model_format=None):
    """(model path, format, actions) from --model: a run folder (with --format) or a model file."""
    if not os.path.exists(model):
        raise FileNotFoundError(f"{model} not found: --model takes a run folder (runs/train/exp) or a model file")
    if os.path.isdir(model) and not os.path.exists(os.path.join(model, "saved_model.pb")):
        from signtrain.export import formats

        run_dir, model_format = model, model_format or "keras"
        path = os.path.join(run_dir, formats.get(model_format).file)
        if not os.path.exists(path):
            fix = (f"export it first with signtrain export {run_dir} --format {model_format}" if model_format != "keras"
                   else "--model takes a finished run folder")
            raise FileNotFoundError(f"{path} not found: {fix}")
    else:
        path, run_dir = model, os.path.dirname(os.path.abspath(model))
        from signtrain.export import formats

        model_format = model_format or formats.of_path(path)
    actions_path = os.path.join(run_dir, config.ACTIONS_FILE)
    if not os.path.exists(actions_path):
        raise FileNotFoundError(f"{actions_path} not found: the sign names come from the actions.npy beside "
                                f"the model (--model takes a finished run folder)")
    return path, model_format, read_actions(actions_path)


def read_actions(path):
    """The sign names in an actions.npy (np.save of a string array), or a ValueError naming the file."""
    try:
        actions = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        why = "it holds Python objects (an object array)" if "pickle" in str(error) else f"{error}"
        raise ValueError(f"{path} is not a readable actions.npy ({why}); signtrain never unpickles it. Write it with "
                         f"np.save(path, np.array(['Hello', 'Yes', ...])), or use the one the run wrote") from None
    if actions.ndim != 1 or actions.dtype.kind not in "US":
        raise ValueError(f"{path} holds {actions.dtype} values of shape {actions.shape}, not a list of sign names; "
                         f"use the actions.npy the run wrote")
    if actions.dtype.kind == "S":  # np.save of bytes: the names as UTF-8 text
        try:
            return [action.decode("utf-8") for action in actions.tolist()]
        except UnicodeDecodeError:
            raise ValueError(f"{path} holds bytes that are not UTF-8 text; use the actions.npy the run wrote") from None
    return [str(action) for action in actions]


def _unusable(sequence):
    """Why a sequence from an .npy file is not scored (as a frame folder's would be skipped), or None."""
    if not np.isfinite(sequence).all():
        return "contains NaN, inf or a value beyond float32"
    beyond = beyond_camera(sequence)
    return f"has a value of {beyond[1]:.3g}, {BEYOND_CAMERA}" if beyond else None


def read_sequences(path, sequence_length=config.SEQUENCE_LENGTH):
    """[(name, (frames, features) array or why it is unusable)] from an .npy (one sequence or a stack
    of them), one sequence folder (0.npy..29.npy), or a folder of sequence folders (one level or an
    MP_Data tree). A broken sequence inside a folder is reported, not fatal."""
    if os.path.isfile(path):
        if not path.endswith(".npy"):
            raise ValueError(f"{path}: --data takes an .npy file or a folder of frames")
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as error:
            raise ValueError(f"{path} is not a plain numeric .npy ({error})") from None
        if array.ndim == 2:
            array = array[None]
        if array.ndim != 3 or array.shape[1] != sequence_length or array.dtype.kind not in "fiu":
            raise ValueError(f"{path} has shape {array.shape} ({array.dtype}); expected ({sequence_length}, values "
                             f"per frame) for one sequence, e.g. ({sequence_length}, 1662), or (n, {sequence_length}, "
                             f"values per frame) for several")
        names = [f"{os.path.basename(path)}[{index}]" if len(array) > 1 else os.path.basename(path)
                 for index in range(len(array))]
        with np.errstate(over="ignore"):
            rows = array.astype(np.float32)
        return [(name, _unusable(row) or row) for name, row in zip(names, rows)]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path} not found")
    if os.path.exists(os.path.join(path, "0.npy")):
        return [(os.path.basename(os.path.normpath(path)), data.load_sequence(path, sequence_length))]
    found = []
    for name in sorted(os.listdir(path), key=lambda n: (not n.isdecimal(), int(n) if n.isdecimal() else 0, n)):
        child = os.path.join(path, name)
        if os.path.isdir(child) and not name.startswith(".") and not os.path.islink(child):
            if os.path.exists(os.path.join(child, "0.npy")):
                found.append((name, data.load_sequence(child, sequence_length)))
                continue
            try:
                inner = read_sequences(child, sequence_length)
            except ValueError:  # a folder without any sequence: not ours to classify
                continue
            found += [(f"{name}/{child_name}", sequence) for child_name, sequence in inner]
    if not found:
        raise ValueError(f"no sequence in {path}: expected frames 0.npy..{sequence_length - 1}.npy in it or in "
                         f"its sub-folders")
    return found


def top_k(probabilities, actions, k=3):
    """[(action, probability)] best first."""
    order = np.argsort(probabilities)[::-1][:k]
    return [(actions[index], float(probabilities[index])) for index in order]
