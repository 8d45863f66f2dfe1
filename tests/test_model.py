from signtrain.model import network as model_lib


def test_architecture_is_the_spec_layer_by_layer():
    net = model_lib.compile_model(model_lib.build_model(10))
    expected = [
        ("LSTM", {"units": 64, "return_sequences": True, "activation": "tanh"}),
        ("BatchNormalization", {}),
        ("Dropout", {"rate": 0.2}),
        ("LSTM", {"units": 128, "return_sequences": True, "activation": "tanh"}),
        ("BatchNormalization", {}),
        ("Dropout", {"rate": 0.2}),
        ("LSTM", {"units": 64, "return_sequences": False, "activation": "tanh"}),
        ("BatchNormalization", {}),
        ("Dropout", {"rate": 0.2}),
        ("Dense", {"units": 64, "activation": "relu"}),
        ("Dense", {"units": 32, "activation": "relu"}),
        ("Dense", {"units": 10, "activation": "softmax"}),
    ]
    assert len(net.layers) == len(expected)
    for layer, (kind, settings) in zip(net.layers, expected):
        assert type(layer).__name__ == kind
        layer_config = layer.get_config()
        for key, value in settings.items():
            assert layer_config[key] == value, (layer.name, key)
        if kind == "LSTM":
            # What keeps the cuDNN kernel available on a GPU.
            assert layer_config["recurrent_activation"] == "sigmoid"
            assert layer_config["unroll"] is False and layer_config["recurrent_dropout"] == 0
    assert tuple(net.input_shape) == (None, 30, 1662)
    assert tuple(net.output_shape) == (None, 10)
    assert net.optimizer.__class__.__name__ == "Adam"
    compile_config = net.get_compile_config()
    assert compile_config["loss"] == "categorical_crossentropy"
    assert compile_config["metrics"] == ["categorical_accuracy"]
    # Weights by hand: LSTM 4*u*(inputs+u+1), BatchNorm 4*u, Dense (inputs+1)*u.
    lstm = 4 * 64 * (1662 + 64 + 1) + 4 * 128 * (64 + 128 + 1) + 4 * 64 * (128 + 64 + 1)
    batch_norm = 4 * (64 + 128 + 64)
    dense = (64 + 1) * 64 + (64 + 1) * 32 + (32 + 1) * 10
    assert net.count_params() == lstm + batch_norm + dense == 597_930


def test_input_and_output_follow_the_data():
    net = model_lib.build_model(4, sequence_length=20, num_features=258)
    assert tuple(net.input_shape) == (None, 20, 258)
    assert tuple(net.output_shape) == (None, 4)


def test_one_action_is_refused():
    import pytest

    with pytest.raises(ValueError, match="at least 2 actions"):
        model_lib.build_model(1)
