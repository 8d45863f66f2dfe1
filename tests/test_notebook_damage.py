"""The notebook's data-loading cell and signtrain.data.dataset.load_dataset on the same damaged trees (issue 17 §4).

Each case damages a small MP_Data tree the way tests/test_check.py does (and test_data's archive and
float32-overflow cases), runs the committed notebook's configuration and loading cells on it (the code
Colab runs, read from the .ipynb) and the package's loader, and asserts they agree: the same X, labels
and skipped sequences where the package loads, and a stop with a message naming the problem where the
package refuses. The notebook is self-contained and may say less, but it must never build an X the
package would not train on.
"""

import ast
import functools
import os
import shutil

import nbformat
import numpy as np
import pytest

from conftest import unpack_realdata, write_sequence
from signtrain import config
from signtrain.data import dataset as data, synth
from test_check import MARKER, damage, reshape_tree, tree  # noqa: F401 - tree: a copy of this module's template
from test_notebook import NOTEBOOK, code_cells


def notebook_cell(*markers):
    """The source of the one code cell that holds every marker (found by content, not by number)."""
    cells = [cell.source for cell in code_cells(nbformat.read(NOTEBOOK, as_version=4))
             if all(marker in cell.source for marker in markers)]
    assert len(cells) == 1, f"{len(cells)} code cells hold {markers}"
    return cells[0]


LOAD_MARKERS = ("np.load(", "X = np.array(", "to_categorical(")
CONFIG_CELL = notebook_cell("ACTIONS = np.array", "label_map = ")
LOAD_CELL = notebook_cell(*LOAD_MARKERS)


@functools.lru_cache(maxsize=1)
def notebook_imports():
    """What the code cells before the loading cell import (their top-level import statements)."""
    sources = [cell.source for cell in code_cells(nbformat.read(NOTEBOOK, as_version=4))]
    load = next(index for index, source in enumerate(sources) if all(marker in source for marker in LOAD_MARKERS))
    nodes = [node for source in sources[:load] for node in ast.parse(source).body
             if isinstance(node, (ast.Import, ast.ImportFrom))]
    namespace = {}
    exec(compile(ast.Module(nodes, type_ignores=[]), "notebook imports", "exec"), namespace)
    assert "to_categorical" in namespace and "np" in namespace
    return namespace


def run_notebook_loading(data_dir):
    """The configuration cell then the loading cell on data_dir, as cell 1 leaves DATA_PATH: their namespace."""
    namespace = dict(notebook_imports(), DATA_PATH=str(data_dir))
    exec(CONFIG_CELL, namespace)
    exec(LOAD_CELL, namespace)
    return namespace


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """The spec's 10 signs x 3 sequences from the synthetic signer (MediaPipe's layout fingerprints)."""
    return synth.write_mp_data(str(tmp_path_factory.mktemp("template") / "MP_Data"), sequences=3, seed=8)


FRAME = ("Thank_You", "1", "12.npy")  # the damaged frame of the one-frame cases


def damage_frame(kind):
    return lambda tree: damage(tree.joinpath(*FRAME), kind)


def stray_files(tree):
    for name in (".DS_Store", "desktop.ini", "Thumbs.db"):
        (tree / "Hello" / name).write_text("x")
    (tree / "Hello" / "old takes").mkdir()
    (tree / ".ipynb_checkpoints").mkdir()
    (tree / "__MACOSX").mkdir()
    (tree / "README.txt").write_text("x")


def one_sequence_258_wide(tree):
    write_sequence(tree, "No", 1, [np.zeros(258)] * 30)


def every_sequence_of(action):
    def apply(tree):
        for sequence in os.listdir(tree / action):
            os.remove(tree / action / sequence / "0.npy")
    return apply


def every_sequence_broken(tree):
    for action in os.listdir(tree):
        every_sequence_of(action)(tree)


def real(name):
    """The tree replaced by 3 sequences a sign of a shared real recording (../shared/realdata)."""
    def apply(tree):
        shutil.rmtree(tree)
        unpack_realdata(name, tree, limit_per_class=3)
    return apply


def width(values):
    return lambda tree: reshape_tree(tree, lambda frame: np.concatenate([frame[:132], frame[1536:]])[-values:])


def blocks_in_order(*order):
    return lambda tree: reshape_tree(tree, lambda frame: np.concatenate([frame[config.block_slice(n)] for n in order]))


# (damage, what the package says about Thank_You/1, what the notebook's reason must name)
SKIP_CASES = [pytest.param(damage_frame(kind), package_says, notebook_names, id=kind)
              for kind, package_says, notebook_names in (
    ("missing", "missing frame 12.npy", "frame 12"),
    ("extra", "2 extra frames (30.npy..31.npy)", "extra"),
    ("truncated", "unreadable frame 12.npy", "frame 12"),
    ("garbage", "unreadable frame 12.npy", "frame 12"),
    ("empty", "unreadable frame 12.npy (EOFError", "frame 12"),
    ("folder", "unreadable frame 12.npy (IsADirectoryError", "frame 12"),
    ("pickled", "unreadable frame 12.npy", "frame 12"),
    ("npz", "frame 12.npy is an .npz archive", "frame 12"),
    ("zip_header", "unreadable frame 12.npy (BadZipFile", "frame 12"),
    ("strings", "frame 12.npy has dtype <U", "frame 12"),
    ("nan", "frame 12.npy contains NaN or inf", "frame 12"),
    ("inf", "frame 12.npy contains NaN or inf", "frame 12"),
    ("float32_overflow", "frame 12.npy has a value beyond float32's range", "frame 12"),
    ("huge", "frame 12.npy has a value of 1e+30, far beyond what MediaPipe gives", "frame 12"),
    ("short", "frame 12.npy has 1600 values, frame 0.npy has 1662", "frame 12"),
    ("2d", "has shape (2, 831), expected a flat array", "frame 12"),
)]


@pytest.mark.parametrize("damage, package_reason, notebook_names", SKIP_CASES)
def test_a_sequence_the_package_skips_the_notebook_skips_too(tree, damage, package_reason, notebook_names):
    damage(tree)
    namespace = run_notebook_loading(tree)
    dataset = data.load_dataset(str(tree), use_cache=False)
    [skipped] = dataset.skipped  # the case does what test_check says the package does
    assert (skipped["action"], skipped["sequence"]) == FRAME[:2] and package_reason in skipped["reason"]
    assert dataset.X.shape == (29, config.SEQUENCE_LENGTH, config.NUM_FEATURES)
    X, y = namespace["X"], namespace["y"]
    assert X.shape == dataset.X.shape and np.isfinite(X).all()
    np.testing.assert_array_equal(X, dataset.X)  # the same rows in the same order: the same sequences kept
    np.testing.assert_array_equal(y.argmax(1), dataset.y)
    assert list(namespace["ACTIONS"]) == dataset.actions == list(config.SPEC_ACTIONS)
    [(action, sequence, reason)] = namespace["skipped"]
    assert (action, sequence) == FRAME[:2] and notebook_names in reason
    assert not os.path.exists(MARKER)  # neither unpickled the pickled frame


@pytest.mark.parametrize("damage, rows", [(damage_frame("integers"), 30), (stray_files, 30),
                                          (real("akadeepanshu_6signs.npz"), 18)],
                         ids=["integer_frames", "stray_files", "real_recording"])
def test_what_the_package_loads_whole_the_notebook_loads_the_same(tree, damage, rows):
    damage(tree)
    namespace = run_notebook_loading(tree)
    dataset = data.load_dataset(str(tree), use_cache=False)
    assert dataset.skipped == [] and dataset.X.shape == (rows, config.SEQUENCE_LENGTH, config.NUM_FEATURES)
    assert namespace["skipped"] == []
    np.testing.assert_array_equal(namespace["X"], dataset.X)
    np.testing.assert_array_equal(namespace["y"].argmax(1), dataset.y)
    assert list(namespace["ACTIONS"]) == dataset.actions


def test_a_sequence_of_another_width_is_left_out_by_both(tree):
    one_sequence_258_wide(tree)
    namespace = run_notebook_loading(tree)
    dataset = data.load_dataset(str(tree), use_cache=False)
    assert dataset.skipped == [
        {"action": "No", "sequence": "1", "reason": "frames have 258 values, the rest of the data 1662"}]
    np.testing.assert_array_equal(namespace["X"], dataset.X)
    np.testing.assert_array_equal(namespace["y"].argmax(1), dataset.y)
    [(action, _, reason)] = namespace["skipped"]
    assert action == "No" and "258" in reason and "1662" in reason


def test_a_sequence_of_frames_without_values_is_left_out_by_both(tree):
    """np.save of an empty array: a frame of 0 values (it crashed the package's value-range check)."""
    write_sequence(tree, "No", 1, [np.zeros(0)] * 30)
    namespace = run_notebook_loading(tree)
    dataset = data.load_dataset(str(tree), use_cache=False)
    assert [(skip["action"], skip["sequence"]) for skip in dataset.skipped] == [("No", "1")]
    assert "0 values" in dataset.skipped[0]["reason"]
    np.testing.assert_array_equal(namespace["X"], dataset.X)
    np.testing.assert_array_equal(namespace["y"].argmax(1), dataset.y)
    assert [entry[:2] for entry in namespace["skipped"]] == [("No", "1")]


def test_the_notebook_names_the_sequence_it_drops_for_its_width(tree):
    one_sequence_258_wide(tree)
    assert [entry[:2] for entry in run_notebook_loading(tree)["skipped"]] == [("No", "1")]


# (damage, the package's refusal, words the notebook's message must hold)
REFUSE_CASES = [
    pytest.param(width(258), "frames have 258 values (pose + left hand + right hand, no face", ["258", "1662"],
                 id="258_wide"),
    pytest.param(width(126), "frames have 126 values (both hands only", ["126", "1662"], id="126_wide"),
    pytest.param(blocks_in_order("face", "pose", "left_hand", "right_hand"),
                 "look like the blocks are in the order face, pose, left_hand, right_hand", ["order"],
                 id="reordered_face_first"),
    pytest.param(blocks_in_order("pose", "left_hand", "right_hand", "face"),
                 "look like the blocks are in the order pose, left_hand, right_hand, face", ["order"],
                 id="reordered_face_last"),
    pytest.param(real("shahdm7md_258features.npz"), "frames have 258 values (pose + left hand + right hand",
                 ["258", "1662"], id="real_258_wide"),
    pytest.param(real("soyachunkz_face_pose_lh_rh.npz"), "look like the blocks are in the order face, pose, left_hand",
                 ["order"], id="real_reordered_face_first"),
    pytest.param(every_sequence_of("Sorry"), "no usable sequence for ['Sorry']", ["Sorry"],
                 id="a_sign_without_a_usable_sequence"),
    pytest.param(every_sequence_broken, "no usable sequence for", ["MP_Data"],  # the data folder's path
                 id="no_usable_sequence_at_all"),
]


@pytest.mark.parametrize("damage, package_refusal, notebook_words", REFUSE_CASES)
def test_where_the_package_refuses_the_notebook_stops_with_a_message(tree, damage, package_refusal, notebook_words):
    damage(tree)
    with pytest.raises(ValueError) as refused:
        data.load_dataset(str(tree), use_cache=False)
    assert package_refusal in str(refused.value)  # the case does what test_check says the package does
    try:
        namespace = run_notebook_loading(tree)
    except Exception as error:  # noqa: BLE001 - any stop, as long as its message names the problem
        message = f"{error.__class__.__name__}: {error}"
    else:
        pytest.fail(f"the notebook built X {namespace['X'].shape} and would train on it; the package refuses: "
                    f"{refused.value}")
    for word in notebook_words:
        assert word in message, message
