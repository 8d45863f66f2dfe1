"""An `.h5` that loads with plain `load_model` in Keras 3 and in Keras 2 (tf_keras; TF 2.15 and older apps).

Keras 3 writes the legacy HDF5 layout that Keras 2 reads (the `model_weights` groups, matched by
layer order), but its `model_config` uses Keras 3 spellings that Keras 2 rejects: `batch_shape`,
dtype-policy objects, Keras-3-only arguments (`optional`, `quantization_config`, an LSTM `seed`,
initializer `input_axes`), and the new functional node format. Keras 3 still reads the Keras 2
spellings (that is how it loads old files), so one file can serve both: `make_portable` rewrites the
config attribute of a file Keras 3 wrote into Keras 2 spellings. The weights are not touched.

The rewrite knows the layers signtrain builds (the spec's LSTM/BatchNorm/Dropout/Dense stack and
the standard layers behind --normalize and --features relative) and each argument their configs have in Keras 3.15, all
tested to load in Keras 2 (tests/test_export.py with tf_keras; TensorFlow 2.15's own Keras by
hand). Another layer, or an argument a later Keras adds, raises NotPortable: the file then stays as
Keras 3 wrote it and the run says it is for Keras 3 only, rather than promise what was not tested.
"""

import json

# Arguments only Keras 3 knows, with the value that means "as Keras 2 does it": dropped when they
# have that value, refused otherwise (a Keras 2 loader could not reproduce the layer).
_KERAS3_ONLY = {
    "optional": False,
    "quantization_config": None,
    "lora_rank": None,
    "lora_alpha": None,
    "synchronized": False,  # BatchNormalization; TF 2.10's Keras does not know the argument
}
# Arguments that mean something else per layer: an LSTM's seed only seeds its dropout masks
# (Keras 2 LSTMs take none), a Dropout's seed exists in both.
_DROP_FOR = {"LSTM": {"seed"}}
# Per layer, Keras-3-only arguments with the value Keras 2 always uses: dropped at that value, refused otherwise.
_KERAS3_ONLY_FOR = {"ZeroPadding1D": {"data_format": "channels_last"}}
# Initializer arguments Keras 2 understands; Keras 3 adds e.g. input_axes/output_axes (None).
_INITIALIZER_KEYS = {"seed", "gain", "mean", "stddev", "minval", "maxval", "scale", "mode", "distribution", "value"}
_COMMON = {"name", "trainable", "dtype"}
_INITIALIZED = {"activation", "use_bias", "kernel_initializer", "bias_initializer", "kernel_regularizer",
                "bias_regularizer", "kernel_constraint", "bias_constraint"}
# Layer class -> the config keys (after the Keras 3 spellings above are dropped) known to load in Keras 2.
KNOWN_LAYERS = {
    "InputLayer": {"name", "dtype", "batch_shape", "sparse", "ragged"},
    "LSTM": _COMMON | _INITIALIZED | {
        "units", "recurrent_activation", "recurrent_initializer", "recurrent_regularizer", "recurrent_constraint",
        "activity_regularizer", "unit_forget_bias", "dropout", "recurrent_dropout", "return_sequences",
        "return_state", "go_backwards", "stateful", "unroll", "zero_output_for_mask"},
    "BatchNormalization": _COMMON | {
        "axis", "momentum", "epsilon", "center", "scale", "beta_initializer", "gamma_initializer",
        "moving_mean_initializer", "moving_variance_initializer", "beta_regularizer", "gamma_regularizer",
        "beta_constraint", "gamma_constraint", "renorm", "renorm_clipping", "renorm_momentum"},
    "Dropout": _COMMON | {"rate", "noise_shape", "seed"},
    "Dense": _COMMON | _INITIALIZED | {"units", "activity_regularizer"},
    "DepthwiseConv1D": _COMMON | {
        "kernel_size", "strides", "padding", "data_format", "dilation_rate", "depth_multiplier", "activation",
        "use_bias", "depthwise_initializer", "bias_initializer", "depthwise_regularizer", "bias_regularizer",
        "activity_regularizer", "depthwise_constraint", "bias_constraint"},
    "Add": _COMMON, "Subtract": _COMMON, "Multiply": _COMMON,
    "Concatenate": _COMMON | {"axis"},
    "UnitNormalization": _COMMON | {"axis"},
    "Cropping1D": _COMMON | {"cropping"},
    "Permute": _COMMON | {"dims"},
    "ReLU": _COMMON | {"max_value", "negative_slope", "threshold"},
    "Rescaling": _COMMON | {"scale", "offset"},
    "ZeroPadding1D": _COMMON | {"padding"},  # and the three below: the --features relative front-end
    "GlobalAveragePooling1D": _COMMON | {"data_format", "keepdims"},
    "RepeatVector": _COMMON | {"n"},
}
_OPTIMIZER_KEYS = {"name", "learning_rate", "beta_1", "beta_2", "epsilon", "amsgrad"}
_TRAINING_KEYS = {"loss", "metrics", "weighted_metrics", "loss_weights", "optimizer_config"}


class NotPortable(ValueError):
    """The model uses something the Keras 2 rewrite does not cover."""


def _dtype_name(value):
    if isinstance(value, dict) and value.get("class_name") in ("DTypePolicy", "FloatDTypePolicy", "Policy"):
        return value["config"]["name"]
    return value


def _serialized_object(value):
    """Keras 2 reads {"class_name", "config"}; Keras 3 adds module and registered_name."""
    config = value.get("config") or {}
    if str(value.get("module") or "").startswith("keras.initializers"):
        extra = {key: item for key, item in config.items() if key not in _INITIALIZER_KEYS}
        if any(item is not None for item in extra.values()):
            raise NotPortable(f"initializer {value['class_name']} uses {sorted(extra)}")
        config = {key: item for key, item in config.items() if key in _INITIALIZER_KEYS}
    return {"class_name": value["class_name"], "config": config}


def _layer_config(class_name, config):
    if class_name not in KNOWN_LAYERS:
        raise NotPortable(f"layer {config.get('name')} is a {class_name}, not among the layers tested in Keras 2")
    out = {}
    for key, value in config.items():
        if key in _KERAS3_ONLY:
            if value != _KERAS3_ONLY[key] and not (key == "synchronized" and value is None):
                raise NotPortable(f"layer {config.get('name')} ({class_name}) sets {key}={value!r}")
            continue
        if key in _DROP_FOR.get(class_name, ()):
            continue
        if key in _KERAS3_ONLY_FOR.get(class_name, {}):
            if value != _KERAS3_ONLY_FOR[class_name][key]:
                raise NotPortable(f"layer {config.get('name')} ({class_name}) sets {key}={value!r}")
            continue
        if key not in KNOWN_LAYERS[class_name]:
            raise NotPortable(f"layer {config.get('name')} ({class_name}) has the argument {key!r}, not tested in "
                              f"Keras 2")
        if key == "dtype":
            value = _dtype_name(value)
        elif key == "batch_shape":
            key = "batch_input_shape"  # in InputLayer configs of functional models too
        elif isinstance(value, dict) and "class_name" in value:
            value = _serialized_object(value)
        out[key] = value
    return out


def _keras_tensors(value):
    """The (layer, node, tensor) histories of the Keras tensors inside a call's arguments, in order."""
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        return [list(value["config"]["keras_history"])]
    if isinstance(value, (list, tuple)):
        return [history for item in value for history in _keras_tensors(item)]
    if isinstance(value, dict) or value is not None:
        raise NotPortable(f"a layer is called with a non-tensor argument {value!r}")
    return []


def _inbound_nodes(nodes):
    """Keras 3 {"args": [...], "kwargs": {}} nodes -> Keras 2 [[layer, node, tensor, kwargs], ...]."""
    converted = []
    for node in nodes:
        if not isinstance(node, dict):  # already the Keras 2 format
            converted.append(node)
            continue
        # Keras 3 records the call's resolved training flag and an absent mask; Keras 2 takes both
        # from the call context, and a recorded training=False would freeze Dropout there.
        kwargs = {key: value for key, value in node.get("kwargs", {}).items()
                  if key != "training" and not (key == "mask" and value is None)}
        if kwargs:
            raise NotPortable(f"a layer is called with keyword arguments {sorted(kwargs)}")
        converted.append([history + [{}] for history in _keras_tensors(node["args"])])
    return converted


def _tensor_list(value):
    """Keras 3 writes a single input/output as [name, 0, 0]; Keras 2 wants a list of those."""
    if value and isinstance(value[0], str):
        return [value]
    return value


def portable_model_config(model_config):
    """The Keras 2 spelling of a Keras 3 `model_config` (a dict, as json.loads gives it)."""
    class_name, config = model_config["class_name"], model_config["config"]
    if class_name not in ("Sequential", "Functional", "Model"):
        raise NotPortable(f"a {class_name} model")
    layers = []
    for layer in config["layers"]:
        converted = {"class_name": layer["class_name"], "config": _layer_config(layer["class_name"], layer["config"])}
        if "name" in layer:
            converted["name"] = layer["name"]
        if "inbound_nodes" in layer:
            converted["inbound_nodes"] = _inbound_nodes(layer["inbound_nodes"])
        layers.append(converted)
    out = {"name": config["name"], "layers": layers}
    if class_name != "Sequential":
        out["input_layers"] = _tensor_list(config["input_layers"])
        out["output_layers"] = _tensor_list(config["output_layers"])
        class_name = "Functional"
    return {"class_name": class_name, "config": out}


def portable_training_config(training_config):
    """Loss, metrics and Adam's basic settings: what both loaders can compile from."""
    out = {key: value for key, value in training_config.items() if key in _TRAINING_KEYS}
    optimizer = out.get("optimizer_config")
    if optimizer:
        out["optimizer_config"] = {"class_name": optimizer["class_name"],
                                   "config": {key: value for key, value in optimizer["config"].items()
                                              if key in _OPTIMIZER_KEYS}}
    return out


def make_portable(path):
    """Rewrite the config attributes of an `.h5` Keras 3 wrote, in place (the caller owns a temp
    file). Raises NotPortable, leaving the file as it was, when the model uses something unknown."""
    import h5py

    with h5py.File(path, "r+") as handle:
        model_config = portable_model_config(json.loads(handle.attrs["model_config"]))
        training_config = None
        if "training_config" in handle.attrs:
            training_config = portable_training_config(json.loads(handle.attrs["training_config"]))
        handle.attrs["model_config"] = json.dumps(model_config)
        if training_config is not None:
            handle.attrs["training_config"] = json.dumps(training_config)
    return path
