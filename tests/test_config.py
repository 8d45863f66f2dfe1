import numpy as np

from signtrain import config


def test_frame_layout_is_the_contract():
    assert config.NUM_FEATURES == 1662
    assert [(name, start, stop) for name, start, stop in config.BLOCKS] == [
        ("pose", 0, 132),
        ("face", 132, 1536),
        ("left_hand", 1536, 1599),
        ("right_hand", 1599, 1662),
    ]
    frame = np.arange(1662)
    assert frame[config.block_slice("right_hand")][0] == 1599
    assert len(frame[config.block_slice("face")]) == 468 * 3


def test_spec_actions_and_training_defaults():
    assert config.SPEC_ACTIONS == (
        "Hello", "Thank_You", "Help", "Yes", "No", "Please", "Sorry", "I_Love_You", "Stop", "More",
    )
    assert (config.DEFAULT_EPOCHS, config.DEFAULT_PATIENCE, config.DEFAULT_BATCH_SIZE, config.DEFAULT_SEED) == (
        200, 30, 16, 42,
    )
    assert (config.TEST_SIZE, config.VALIDATION_SPLIT, config.MONITOR) == (0.1, 0.15, "val_categorical_accuracy")


def test_unknown_block_is_an_error():
    import pytest

    with pytest.raises(ValueError, match="unknown block"):
        config.block_slice("tail")
