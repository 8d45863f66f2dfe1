"""Exports of a trained model (SavedModel, ONNX, TFLite) and the check that each computes what the
Keras model computes; the .h5 the live app loads (save_h5). Files are written by signtrain.files.
"""

import json
import os

import numpy as np

from signtrain import files


def save_h5(model, path, build=None, X=None):
    """The live app's format, written so that Keras 3 and Keras 2 (tf_keras; TF 2.15 and older apps) both load
    it with plain load_model (signtrain.export.h5compat): build(keras=module) makes model's layers again in
    tf_keras, X (a few sequences) is what both loaders must predict alike. Returns None, or why the
    file is Keras 3 only (then it is the file Keras 3 writes itself).

    Keras 3 warns that HDF5 is legacy; it still is what the app loads.
    """
    from signtrain.export import h5compat

    reason = []

    def write(temp):
        try:
            if build is None:
                raise h5compat.NotPortable("no Keras 2 builder was given for this model")
            sample = X[:2] if X is not None else np.random.default_rng(0).random((2, *model.input_shape[1:]))
            h5compat.write_portable(model, build, temp, np.asarray(sample, dtype=np.float32))
        except Exception as error:  # noqa: BLE001 - whatever it is, Keras 3's own file is still good
            reason.append(str(error) if isinstance(error, h5compat.NotPortable) else f"{type(error).__name__}: {error}")
            files.remove_path(temp)
            model.save(temp)

    files.atomic_write(path, write)
    return reason[0] if reason else None


def export_savedmodel(model, path):
    """A TensorFlow SavedModel. Keras 3's model.save(dir) raises; model.export(dir) is the way."""
    if os.path.exists(path):
        raise FileExistsError(f"{path} exists; refusing to overwrite an earlier export")
    return files.atomic_write(path, lambda temp: model.export(temp, verbose=False))


INPUT_NAME = "keypoints"  # the input tensor's name in the ONNX and TFLite files
ONNX_OPSET = 15  # ONNX Runtime 1.10 (2021) and later run it; the LSTM op is native since opset 7


def _inference_function(model, batch_size):
    import tensorflow as tf

    _, frames, features = model.input_shape
    spec = tf.TensorSpec([batch_size, frames, features], tf.float32, name=INPUT_NAME)
    return tf.function(lambda keypoints: model(keypoints, training=False)), spec


def export_onnx(model, path):
    """ONNX through tf2onnx, any batch size. tf2onnx turns each Keras LSTM loop into ONNX's own LSTM
    operator, which ONNX Runtime runs as one fused kernel."""
    try:
        import tf2onnx
    except ImportError:
        raise ImportError("the ONNX export needs tf2onnx and onnx: pip install 'signtrain[export]'") from None
    function, spec = _inference_function(model, None)

    def write(temp):
        tf2onnx.convert.from_function(function, input_signature=[spec], opset=ONNX_OPSET, output_path=temp)

    return files.atomic_write(path, write)


def export_tflite(model, path):
    """TFLite with builtin operators only (no Flex delegate), for one sequence per call.

    The stacked LSTMs convert to builtin ops only at a fixed batch size and with the weights frozen
    into constants (left as variables, the converted model outputs NaN). Batch 1 is what the live
    app feeds: one 30-frame window per call.
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    function, spec = _inference_function(model, 1)
    frozen = convert_variables_to_constants_v2(function.get_concrete_function(spec))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]

    def write(temp):
        blob = converter.convert()
        with open(temp, "wb") as handle:
            handle.write(blob)

    return files.atomic_write(path, write)


def _disagreements(outputs, reference, tolerance):
    """Rows whose top-1 sign differs, not counting near ties (the Keras model's two best within the
    tolerance, where float noise may pick either)."""
    ordered = np.sort(reference, axis=1)
    tie = ordered[:, -1] - ordered[:, -2] <= tolerance
    return int(np.sum((outputs.argmax(axis=1) != reference.argmax(axis=1)) & ~tie))


def export_and_check(model, run_dir, formats, X_check, reference=None, written=()):
    """Write each format into run_dir and compare its outputs with the Keras model's on X_check.

    An export whose outputs are not finite, differ by more than config.EXPORT_TOLERANCE or change a
    top-1 sign raises ValueError, and is removed if this call wrote it; one that exists already is
    kept and checked again (`written`: formats the caller has just written itself). Returns
    {format: {"file", "max_abs_diff", "top1_agree", "checked_on", "converted"}} for metrics.json.
    """
    from signtrain import config
    from signtrain.export import infer
    from signtrain.export import formats as table  # the parameter `formats` names the chosen ones

    if reference is None:
        reference = model.predict(X_check, verbose=0)
    reference = np.asarray(reference, dtype=np.float64)
    if not np.isfinite(reference).all():  # a model whose weights went NaN: nothing to convert
        raise ValueError(f"the Keras model of {run_dir} gives no finite probability on the test sequences: the model "
                         f"is damaged (weights that are NaN, e.g. trained on frames no camera gives); train it again")
    records = {}
    for name in formats:
        path = os.path.join(run_dir, table.get(name).file)
        converted = not os.path.exists(path)
        try:
            if converted:
                table.get(name).export(model, path)
            outputs = np.asarray(infer.load_predictor(path, name)(X_check), dtype=np.float64)
        except Exception as error:  # converters and runtimes raise their own exception types
            if converted:
                files.remove_path(path)
            if isinstance(error, (ImportError, OSError)):
                raise
            raise ValueError(f"the {name} export of {run_dir} failed: {type(error).__name__}: {error}") from error
        finite = bool(np.isfinite(outputs).all()) and outputs.shape == reference.shape
        difference = float(np.max(np.abs(outputs - reference))) if finite else float("inf")
        wrong = _disagreements(outputs, reference, config.EXPORT_TOLERANCE) if finite else len(X_check)
        if not difference <= config.EXPORT_TOLERANCE or wrong:
            if converted:
                files.remove_path(path)
            raise ValueError(
                f"the {name} export differs from the Keras model on the test sequences: "
                f"{'outputs not finite or of another shape' if not finite else f'max abs difference {difference:.2e}'} "
                f"(allowed {config.EXPORT_TOLERANCE:.0e}), top-1 different on {wrong} of {len(X_check)}; "
                f"{'removed' if converted else 'delete ' + path + ' and export again'}. "
                f"Please report it with the run's args.yaml."
            )
        agree = len(X_check) - wrong
        fresh = converted or name in written
        records[name] = {"file": table.get(name).file, "max_abs_diff": difference,
                         "top1_agree": f"{agree}/{len(X_check)}", "checked_on": "test sequences",
                         "converted": fresh}
        print(f"{name}: {path} ({'written' if fresh else 'kept, already there'}), max abs difference "
              f"{difference:.1e} vs Keras on {len(X_check)} test sequences, top-1 identical on {agree}")
    return records


def read_test_sequences(run_dir, data_dir=None):
    """The run's test sequences (metrics.json test_sequences), read again from its data folder
    (args.yaml, or data_dir when it moved): what exports are checked and benchmarked on."""
    import yaml

    from signtrain import config
    from signtrain.data import dataset as data, recordings

    paths = {name: os.path.join(run_dir, name) for name in (config.MODEL_FILE, config.METRICS_FILE, config.ARGS_FILE)}
    for path in paths.values():
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} not found: signtrain export takes a finished run folder")
    metrics = _read_metrics(paths[config.METRICS_FILE])
    with open(paths[config.ARGS_FILE], encoding="utf-8") as handle:
        try:
            args = yaml.safe_load(handle)
        except yaml.YAMLError:
            args = None
    sequences = metrics.test_sequences
    args = args if isinstance(args, dict) else {}
    if not data_dir and args.get("data_folders") and not all(map(os.path.isdir, recordings.expand(args.get("data") or []))):
        data_dir = args["data_folders"]  # run from another folder: the absolute paths the run kept
    data_dir = data_dir or args.get("data")
    if not data_dir:
        raise ValueError(f"{paths[config.ARGS_FILE]} does not say where the data is: pass --data DIR, the folder "
                         f"the run trained on")
    X_check, missing = [], []
    for action, name in sequences:
        folder = recordings.folder_of(data_dir, action, name, args.get("recordings"))  # moved: by name or order
        sequence = data.load_sequence(folder) if os.path.isdir(folder) else "not found"
        if isinstance(sequence, str):
            missing.append(f"{folder} ({sequence})")
        else:
            X_check.append(sequence)
    if not X_check or missing:
        raise FileNotFoundError(
            f"the export is checked on the run's {len(sequences)} test sequences, read from {data_dir}; "
            f"{len(missing) or 'all'} cannot be read (e.g. {missing[:1] or data_dir}). Pass the data folder the "
            f"run trained on with --data DIR; if the data is where it was, {config.METRICS_FILE} (which lists them) "
            f"was changed: copy the run's file again"
        )
    return np.stack(X_check), metrics


def _read_metrics(path):
    """A run's metrics.json as export needs it (test_sequences: [sign, sequence] pairs; exports: a
    dict) as a signtrain.report.metrics.Metrics, or a ValueError naming the file and the way on."""
    from signtrain.report.metrics import Metrics

    fix = "copy the run's metrics.json again, or train the run again with --export"
    try:
        with open(path, encoding="utf-8") as handle:
            metrics = json.load(handle)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise ValueError(f"{path} is not readable JSON ({type(error).__name__}: {str(error)[:100]}): {fix}") from None
    if not isinstance(metrics, dict):
        raise ValueError(f"{path} holds a {type(metrics).__name__}, not a run's metrics: {fix}")
    metrics = Metrics.from_json(metrics)
    sequences = metrics.test_sequences
    if not sequences:
        raise ValueError(f"{path} lists no test_sequences to check the export on (a run of an older signtrain?): "
                         f"train the run again with --export")
    if not isinstance(sequences, list) or not all(
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(part, str) for part in pair)
            for pair in sequences):
        raise ValueError(f"{path}: test_sequences is not a list of [sign, sequence] names: {fix}")
    if not isinstance(metrics.exports or {}, dict):
        raise ValueError(f"{path}: exports is not a table of formats: {fix}")
    return metrics


def export_run(run_dir, formats, data_dir=None):
    """`signtrain export RUN_DIR --format ...`: export a finished run's action_model.h5, check it on the
    run's own test sequences (read again from its data folder) and record it in metrics.json."""
    from signtrain import config
    from signtrain.model import network as model_lib

    if os.path.isdir(run_dir):
        files.require_writable(run_dir, "signtrain export")
    X_check, metrics = read_test_sequences(run_dir, data_dir)
    model = model_lib.load_model(os.path.join(run_dir, config.MODEL_FILE))
    records = export_and_check(model, run_dir, formats, X_check)
    metrics.exports = dict(metrics.exports or {}, **records)
    files.write_json(os.path.join(run_dir, config.METRICS_FILE), metrics.to_json())
    return records
