"""The spec's network, exactly: 3 LSTM (tanh) each followed by BatchNorm and Dropout(0.2), then
Dense 64 relu, Dense 32 relu and a softmax over the actions.

tanh (with the default sigmoid gates, no unroll, no recurrent dropout) is also what lets Keras use
the fused cuDNN kernel on a GPU.
"""

from signtrain import config


def build_model(num_actions, sequence_length=config.SEQUENCE_LENGTH, num_features=config.NUM_FEATURES,
                normalize=False, features="raw", keras=None, members=1):
    """The spec's Sequential model; with normalize (signtrain.model.preprocess) or features="relative"
    (signtrain.model.features), the same layers behind that fixed front-end. `keras` is the Keras module
    that builds it: Keras 3 by default; tf_keras (Keras 2) writes the .h5 Keras 2 apps load (export.save_h5).
    members > 1 (--ensemble): the front-end once, then `members` copies of the spec's layers side by
    side (named member1_..., member2_...), their softmax outputs averaged (signtrain.model.ensemble)."""
    if keras is None:
        from tensorflow import keras
    layers = keras.layers

    if num_actions < 2:
        raise ValueError(f"a classifier needs at least 2 actions, got {num_actions}")
    from signtrain.model import features as features_lib

    if features not in features_lib.FEATURE_SETS:
        raise ValueError(f"--features {features!r} is not one of {', '.join(features_lib.FEATURE_SETS)}")
    flag = "--normalize" if normalize else f"--features {features}" if features != "raw" else None
    if flag and num_features != config.NUM_FEATURES:
        raise ValueError(f"{flag} needs the 1662-value layout, the data has {num_features} values per frame")
    if normalize and features != "raw":
        raise ValueError(f"--normalize and --features {features} are two front-ends; choose one")
    # keras.Input instead of the spec's input_shape= keyword: same model, no deprecation warning.
    inputs = keras.Input(shape=(sequence_length, num_features))
    if not flag and members == 1:
        return keras.Sequential([inputs] + spec_layers(layers, num_actions))
    from signtrain.model import preprocess

    front = inputs if not flag else (preprocess.normalize_keypoints(inputs, layers) if normalize
                                     else features_lib.relative_keypoints(inputs, layers=layers))
    outputs = []
    for member in range(1, members + 1):
        hidden = front
        for layer in spec_layers(layers, num_actions, f"member{member}_" if members > 1 else None):
            hidden = layer(hidden)
        outputs.append(hidden)
    net = keras.Model(inputs, outputs[0] if members == 1 else layers.Average(name="mean_of_members")(outputs))
    preprocess.set_fixed_weights(net)
    return net


def spec_layers(layers, num_actions, prefix=None):
    """The spec's layers from the first LSTM on, new; named prefix + position + kind when prefix is
    given (an ensemble's member), else Keras' own names."""
    stack = []

    def named(kind):
        return {"name": f"{prefix}{len(stack):02d}_{kind}"} if prefix else {}

    for units, return_sequences in config.LSTM_LAYERS:
        stack.append(layers.LSTM(units, return_sequences=return_sequences, activation=config.LSTM_ACTIVATION,
                                 **named("lstm")))
        stack.append(layers.BatchNormalization(**named("batch_normalization")))
        stack.append(layers.Dropout(config.DROPOUT_RATE, **named("dropout")))
    for units in config.DENSE_UNITS:
        stack.append(layers.Dense(units, activation="relu", **named("dense")))
    stack.append(layers.Dense(num_actions, activation="softmax", **named("dense")))
    return stack


def compile_model(model):
    # By keyword: in Keras 3 the third positional argument of compile() is loss_weights.
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["categorical_accuracy"])
    return model


def load_model(path):
    """Load a saved model for inference (the optimizer state is not needed).

    A file that is not a loadable Keras model (truncated by a copy cut short, a plain HDF5 file,
    another program's model) raises a ValueError that names it and what to do.
    """
    import os

    from tensorflow import keras

    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # h5py, Keras and TensorFlow each raise their own types for a bad file
        size = os.path.getsize(path) if os.path.isfile(path) else None
        raise ValueError(f"{path} is not a Keras model signtrain can load ({type(error).__name__}: "
                         f"{str(error).splitlines()[0][:200] if str(error) else 'no detail'}"
                         f"{f'; {size} bytes' if size is not None else ''}). It may be truncated (a copy cut "
                         f"short) or another program's file: copy the run's file again, or train again") from None


def front_end_and_stack(model):
    """(front_end, stack): front_end maps the model's input to the first LSTM's input (None for the
    plain Sequential; the fixed --normalize or --features layers otherwise), stack is the spec's layers from the
    first LSTM on, in order. Training tools (signtrain.training.fast, signtrain.training.precise_bn) walk the stack."""
    from tensorflow import keras

    first = next(layer for layer in model.layers if isinstance(layer, keras.layers.LSTM))
    stack = model.layers[model.layers.index(first):]
    if isinstance(model, keras.Sequential):
        return None, stack
    # One input tensor, not a list of one: called on a tensor, Keras would warn that the structures differ.
    return keras.Model(model.inputs[0], first.input), stack
