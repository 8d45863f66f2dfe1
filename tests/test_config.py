import os
import re

import numpy as np
import pytest

from conftest import REPO
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


def spec_text():
    """The user's spec (../shared/seed); under CI a missing file fails loudly instead of skipping."""
    path = os.path.join(os.path.dirname(REPO), "shared", "seed", "000_bd1fab05ae100e28.txt")
    if not os.path.exists(path):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} is missing: CI must have ../shared beside the checkout")
        pytest.skip(f"{path} not available")
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def test_the_defaults_are_the_spec_s_own_words():
    """Each default as the spec's code writes it (not the numbers typed again here)."""
    spec = spec_text()
    for spelled in (f"test_size={config.TEST_SIZE}", f"random_state={config.DEFAULT_SEED}",
                    f"epochs={config.DEFAULT_EPOCHS}", f"batch_size={config.DEFAULT_BATCH_SIZE}",
                    f"validation_split={config.VALIDATION_SPLIT}", f"patience={config.DEFAULT_PATIENCE}",
                    f"monitor='{config.MONITOR}'", f"NUM_SEQUENCES = {config.NUM_SEQUENCES}",
                    f"SEQUENCE_LENGTH = {config.SEQUENCE_LENGTH}"):
        assert spelled in spec, spelled
    actions = re.search(r"ACTIONS = np\.array\(\[(.*?)\]\)", spec, re.S).group(1)
    assert tuple(re.findall(r"'(\w+)'", actions)) == config.SPEC_ACTIONS


def test_unknown_block_is_an_error():
    with pytest.raises(ValueError, match="unknown block"):
        config.block_slice("tail")
