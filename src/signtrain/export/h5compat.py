"""An `.h5` that loads with plain `load_model` in Keras 3 and in Keras 2 (tf_keras; TF 2.15 and older apps).

Keras 2 writes it, with its own code: the trained model is built again layer for layer in tf_keras
(`model.build_model` takes the Keras module), given the trained weights, and saved by tf_keras' h5
writer. Keras 3 reads Keras 2 files (that is how it loads old models), except arguments it removed,
and TensorFlow 2.15's own Keras 2 lacks one tf_keras added (DROPPED_AT_DEFAULT): they are dropped
from the file's description where they hold the value that means what every loader does. Before the
file is kept, both loaders load it and must predict what the trained model predicts. Anything else
(tf_keras not installed, a layer Keras 2 lacks, a later Keras that rejects something) keeps the file
Keras 3 writes itself, and the run says it is for Keras 3 only and why (export.save_h5). The file is
checked against the tf_keras installed here; TensorFlow 2.15's own Keras by bench/keras2_h5.py.
"""

import json
import warnings

import numpy as np

# tf_keras arguments one of the loaders rejects, with the value that means what that loader always
# does: dropped at that value, refused otherwise (that loader could not rebuild the layer).
DROPPED_AT_DEFAULT = {
    "LSTM": {"time_major": False},  # removed in Keras 3
    "DepthwiseConv1D": {"groups": 1},  # not in Keras 3
    "InputLayer": {"optional": False},  # added in tf_keras 2.16+; TensorFlow 2.15's Keras lacks it
}
# Both loaders must predict what the trained model predicts: float32 reorderings give ~1e-7, a wrong
# weight ~1e-1.
TOLERANCE = 1e-5


class NotPortable(ValueError):
    """Keras 2 cannot write, or one of the two loaders cannot read, this model."""


def keras2():
    """The tf_keras module, or NotPortable saying how to install it."""
    try:
        import tf_keras
    except ImportError:
        import tensorflow as tf

        version = tf.__version__.rsplit(".", 1)[0]
        raise NotPortable(f"tf_keras (Keras 2) is not installed; `pip install --no-deps \"tf-keras=={version}.*\"` "
                          f"(the installed TensorFlow's version) makes the file load in both") from None
    return tf_keras


def keras2_twin(model, build):
    """The same layers built by tf_keras (build(keras=module) -> model), holding model's weights."""
    tf_keras = keras2()
    twin = build(keras=tf_keras)
    ours, theirs = model.layers, twin.layers
    if [type(layer).__name__ for layer in ours] != [type(layer).__name__ for layer in theirs]:
        raise NotPortable("tf_keras builds other layers than the trained model has")
    # Paired by position (both Keras order a model's layers alike). The front-end's layers (before the
    # first LSTM) and an ensemble's members are named by signtrain: each must meet its namesake, so that
    # two of the same type and shape are never swapped; the spec's stack has Keras' own names otherwise.
    front_end = next(index for index, layer in enumerate(ours) if type(layer).__name__ == "LSTM")
    for index, (layer, twin_layer) in enumerate(zip(ours, theirs)):
        named = index < front_end or layer.name.startswith("member")  # an --ensemble member's layers too
        if named and type(layer).__name__ != "InputLayer" and twin_layer.name != layer.name:
            raise NotPortable(f"tf_keras orders the layers otherwise ({layer.name} meets {twin_layer.name})")
        twin_layer.set_weights(layer.get_weights())  # raises on another shape: caught, Keras 3's own file
    from signtrain.model import network as model_lib

    return model_lib.compile_model(twin)  # the file records how it was trained, as Keras 3's own does


def readable_everywhere(path):
    """Drop, in place, the tf_keras arguments a loader lacks (DROPPED_AT_DEFAULT)."""
    import h5py

    def clean(layers):  # a model's layers, and those of the models inside it (--ensemble's members)
        for layer in layers:
            removed = DROPPED_AT_DEFAULT.get(layer["class_name"], {})
            for key, value in removed.items():
                if key in layer["config"] and layer["config"].pop(key) != value:
                    raise NotPortable(f"layer {layer['config'].get('name')} ({layer['class_name']}) sets {key}, "
                                      f"which not every Keras has")
            clean(layer["config"].get("layers", []))

    with h5py.File(path, "r+") as handle:
        model_config = json.loads(handle.attrs["model_config"])
        clean(model_config["config"]["layers"])
        handle.attrs["model_config"] = json.dumps(model_config)


def check_both_load(path, model, X):
    """Plain load_model in Keras 3 and in tf_keras, as the live app calls it: each must predict what
    model predicts on X."""
    import logging

    from tensorflow import keras

    expected = np.asarray(model(X, training=False))
    absl = logging.getLogger("absl")
    level = absl.level
    for name, loader in (("Keras 3", keras.models.load_model), ("Keras 2", keras2().models.load_model)):
        # Quiet: Keras 3 logs that a loaded model's metrics are not built yet, and warns that a
        # Keras 2 input list is given one tensor; the live app sees the same and runs alike.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            absl.setLevel(logging.ERROR)
            try:
                outputs = np.asarray(loader(path)(X, training=False))
            except Exception as error:  # noqa: BLE001 - each Keras raises its own types for a config it rejects
                raise NotPortable(f"{name} cannot load it ({type(error).__name__}: {str(error)[:200]})") from None
            finally:
                absl.setLevel(level)
        difference = float(np.max(np.abs(outputs - expected)))
        if not difference <= TOLERANCE:
            raise NotPortable(f"{name} loads it but predicts {difference:.2g} away from the trained model")


def write_portable(model, build, path, X):
    """Write model to path (.h5) so that both Keras load it; raises NotPortable (path may then hold
    a partial file: the caller owns it as a temp name)."""
    twin = keras2_twin(model, build)
    with warnings.catch_warnings():  # tf_keras calls HDF5 legacy; it is what the live app loads
        warnings.simplefilter("ignore", UserWarning)
        twin.save(path)
    readable_everywhere(path)
    check_both_load(path, model, X)
    return path
