"""Writing a run's files so that nothing the user had is ever half-written or overwritten.

Every file is written under a temporary name in the same folder and renamed into place: an
interrupted run leaves either the old file or the new one, never a truncated model.
"""

import json
import os
import shutil

import numpy as np


def partial_name(path):
    folder, name = os.path.split(path)
    stem, extension = os.path.splitext(name)
    # Keras picks the format from the extension, so the temp name keeps it.
    return os.path.join(folder, f".{stem}.partial{extension}")


def atomic_write(path, write):
    """Call write(temp_path), then rename temp_path to path. Returns path."""
    temp = partial_name(path)
    if os.path.isdir(temp):
        shutil.rmtree(temp)
    elif os.path.exists(temp):
        os.remove(temp)
    try:
        write(temp)
        os.replace(temp, path)
    except BaseException:
        if os.path.isdir(temp):
            shutil.rmtree(temp, ignore_errors=True)
        elif os.path.exists(temp):
            os.remove(temp)
        raise
    return path


def save_h5(model, path):
    """The live app's format, written so that Keras 3 and Keras 2 (tf_keras, TF 2.10-2.15) both load
    it with plain load_model (signtrain.h5compat). Returns None, or why the file is Keras 3 only.

    Keras 3 warns that HDF5 is legacy; it still is what the app loads.
    """
    from signtrain import h5compat

    reason = []

    def write(temp):
        model.save(temp)
        try:
            h5compat.make_portable(temp)
        except h5compat.NotPortable as error:
            reason.append(str(error))

    atomic_write(path, write)
    return reason[0] if reason else None


def save_actions(actions, path):
    """actions.npy: the label names in label order, as the spec's np.save(ACTIONS) writes them."""

    def write(temp):
        with open(temp, "wb") as handle:
            np.save(handle, np.array(actions))

    return atomic_write(path, write)


def export_savedmodel(model, path):
    """A TensorFlow SavedModel. Keras 3's model.save(dir) raises; model.export(dir) is the way."""
    if os.path.exists(path):
        raise FileExistsError(f"{path} exists; refusing to overwrite an earlier export")
    return atomic_write(path, lambda temp: model.export(temp, verbose=False))


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

    return atomic_write(path, write)


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

    return atomic_write(path, write)


EXPORTERS = {"savedmodel": export_savedmodel, "onnx": export_onnx, "tflite": export_tflite}


def parse_formats(text):
    """'onnx,tflite' -> ["onnx", "tflite"], with an error that lists the choices."""
    formats = [name.strip().lower() for name in str(text).split(",") if name.strip()]
    unknown = [name for name in formats if name not in EXPORTERS]
    if unknown or not formats:
        raise ValueError(f"unknown export format {', '.join(unknown) or repr(text)}: choose from "
                         f"{', '.join(EXPORTERS)} (comma-separated, e.g. --export onnx,tflite)")
    return list(dict.fromkeys(formats))


def export_and_check(model, run_dir, formats, X_check, reference=None):
    """Write each format into run_dir and compare its outputs with the Keras model's on X_check.

    An export that differs by more than config.EXPORT_TOLERANCE or changes a top-1 sign is removed
    and raises ValueError; one that exists already is kept and checked again. Returns
    {format: {"file", "max_abs_diff", "top1_agree", "checked_on", "converted"}} for metrics.json.
    """
    from signtrain import config, infer

    if reference is None:
        reference = model.predict(X_check, verbose=0)
    records = {}
    for name in formats:
        path = os.path.join(run_dir, config.EXPORT_FILES[name])
        converted = not os.path.exists(path)
        if converted:
            EXPORTERS[name](model, path)
        outputs = infer.load_predictor(path, name)(X_check)
        difference = float(np.max(np.abs(outputs.astype(np.float64) - reference)))
        agree = int(np.sum(outputs.argmax(axis=1) == reference.argmax(axis=1)))
        if difference > config.EXPORT_TOLERANCE or agree < len(X_check):
            if converted:
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
            raise ValueError(
                f"the {name} export differs from the Keras model on the test sequences: max abs difference "
                f"{difference:.2e} (allowed {config.EXPORT_TOLERANCE:.0e}), top-1 identical on {agree} of "
                f"{len(X_check)}; {'removed' if converted else 'delete ' + path + ' and export again'}. "
                f"Please report it with the run's args.yaml."
            )
        records[name] = {"file": config.EXPORT_FILES[name], "max_abs_diff": difference,
                         "top1_agree": f"{agree}/{len(X_check)}", "checked_on": "test sequences",
                         "converted": converted}
        print(f"{name}: {path} ({'written' if converted else 'kept, already there'}), max abs difference "
              f"{difference:.1e} vs Keras on {len(X_check)} test sequences, top-1 identical on {agree}")
    return records


def write_text(path, text):
    def write(temp):
        with open(temp, "w", encoding="utf-8") as handle:
            handle.write(text)

    return atomic_write(path, write)


def write_json(path, data):
    return write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_yaml(path, data):
    import yaml

    return write_text(path, yaml.safe_dump(data, sort_keys=False))


def export_run(run_dir, formats, data_dir=None):
    """`signtrain export RUN_DIR --format ...`: export a finished run's action_model.h5, check it on the
    run's own test sequences (read again from its data folder) and record it in metrics.json."""
    import yaml

    from signtrain import config, data, model as model_lib

    paths = {name: os.path.join(run_dir, name) for name in (config.MODEL_FILE, config.METRICS_FILE, config.ARGS_FILE)}
    for path in paths.values():
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} not found: signtrain export takes a finished run folder")
    with open(paths[config.METRICS_FILE], encoding="utf-8") as handle:
        metrics = json.load(handle)
    with open(paths[config.ARGS_FILE], encoding="utf-8") as handle:
        args = yaml.safe_load(handle)
    data_dir = data_dir or args["data"]
    sequences = metrics.get("test_sequences") or []
    X_check, missing = [], []
    for action, name in sequences:
        folder = os.path.join(data_dir, action, name)
        sequence = data.load_sequence(folder) if os.path.isdir(folder) else "not found"
        if isinstance(sequence, str):
            missing.append(f"{folder} ({sequence})")
        else:
            X_check.append(sequence)
    if not X_check or missing:
        raise FileNotFoundError(
            f"the export is checked on the run's {len(sequences)} test sequences, read from {data_dir}; "
            f"{len(missing) or 'all'} cannot be read (e.g. {missing[:1] or data_dir}). Pass the data folder the "
            f"run trained on with --data DIR"
        )
    model = model_lib.load_model(paths[config.MODEL_FILE])
    records = export_and_check(model, run_dir, formats, np.stack(X_check))
    metrics["exports"] = dict(metrics.get("exports") or {}, **records)
    write_json(paths[config.METRICS_FILE], metrics)
    return records
