"""ml/training_notebook.ipynb: generated from its .py source, and run headless on synthetic data."""

import ast
import json
import os
import re
import subprocess
import sys

import nbformat
import numpy as np
import pytest

from conftest import REPO
from signtrain import config
from signtrain.data import dataset as data, synth
from signtrain.model import network as model_lib

sys.path.insert(0, os.path.join(REPO, "ml"))
import build_notebook  # noqa: E402

NOTEBOOK = os.path.join(REPO, "ml", "training_notebook.ipynb")


def code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def test_committed_notebook_is_what_the_generator_writes():
    with open(NOTEBOOK, encoding="utf-8") as handle:
        assert handle.read() == build_notebook.build(), "run `make notebook` and commit the .ipynb"


def test_notebook_shape():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    cells = code_cells(notebook)
    assert len(cells) == 10
    # The spec's order: drive/extract, imports, configuration, load, split, model, train, evaluate, plots, save.
    markers = ["drive.mount", "import tensorflow", "ACTIONS = np.array", "np.load(", "train_test_split(",
               "Sequential([", "model.fit(", "evaluate(X_test", "training_history.png", "actions.npy"]
    for cell, marker in zip(cells, markers):
        assert marker in cell.source
    assert all(not cell.outputs and cell.execution_count is None for cell in cells)  # stripped
    assert "colab-badge.svg" in notebook.cells[0].source and "MP_Data.zip" in notebook.cells[0].source
    source = "\n".join(cell.source for cell in cells)
    assert "input_shape=" not in source and ".export(" in source
    assert "evaluate(X_train" not in source
    imported = set()
    for cell in cells:
        for node in ast.walk(ast.parse(cell.source)):  # plain Python: no shell magics
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                imported.add(node.module.split(".")[0])
    # Self-contained: the standard library and what Colab ships, never this package or the recorders' utils.
    colab_ships = {"google", "numpy", "tensorflow", "sklearn", "matplotlib", "seaborn"}
    assert imported - set(sys.stdlib_module_names) <= colab_ships, imported


def test_safe_extract_refuses_entries_outside_the_folder(tmp_path):
    import zipfile

    namespace = {}
    exec(code_cells(nbformat.read(NOTEBOOK, as_version=4))[0].source.split("if IN_COLAB:")[0], namespace)
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("MP_Data/Hello/0/0.npy", b"x")
        archive.writestr("../escaped.txt", b"x")
    with pytest.raises(ValueError, match="points outside"):
        namespace["safe_extract"](str(bad), str(tmp_path / "content"))
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "content" / "MP_Data").exists()
    nested = tmp_path / "nested.zip"
    with zipfile.ZipFile(nested, "w") as archive:
        archive.writestr("project/MP_Data/Hello/0/0.npy", b"x")
    namespace["safe_extract"](str(nested), str(tmp_path / "content"))
    assert namespace["find_mp_data"](str(tmp_path / "content")) == str(tmp_path / "content" / "project" / "MP_Data")
    assert namespace["find_mp_data"](str(tmp_path)) is None


def test_the_notebook_never_overwrites_an_earlier_output(tmp_path, monkeypatch):
    """keep_previous moves an earlier file aside under a new name each time, within the same second too;
    and EPOCHS is the spec's 200 unless SIGNTRAIN_EPOCHS shortens a trial run."""
    monkeypatch.delenv("SIGNTRAIN_EPOCHS", raising=False)
    namespace = {}
    exec(code_cells(nbformat.read(NOTEBOOK, as_version=4))[0].source.split("if IN_COLAB:")[0], namespace)
    assert namespace["EPOCHS"] == config.DEFAULT_EPOCHS
    model = tmp_path / "action_model.h5"
    for content in ("first", "second", "third"):
        model.write_text(content)
        namespace["keep_previous"](str(model), str(tmp_path))
        assert not model.exists()
    kept = sorted((tmp_path / "signtrain_previous").iterdir())
    assert sorted(path.read_text() for path in kept) == ["first", "second", "third"]
    assert all(path.name.endswith("_action_model.h5") for path in kept)
    namespace["keep_previous"](str(tmp_path / "never_written.png"), str(tmp_path))  # nothing to keep: no error


# Appended to the notebook before a headless run: what the tests compare with the package.
STATE_CELL = (
    "import json\n"
    "np.savez('state.npz', X=X, y=y, X_test=X_test, y_test=y_test, actions=ACTIONS, X_fit=X_train[:FIT_ROWS])\n"
    "json.dump({'patience': early_stop.patience, 'monitor': early_stop.monitor, 'restore': early_stop.restore_best_weights,\n"
    "           'checkpoint_monitor': checkpoint.monitor, 'save_best_only': checkpoint.save_best_only,\n"
    "           'fit_rows': FIT_ROWS, 'n_train': len(X_train), 'n_val': len(X_train) - FIT_ROWS,\n"
    "           'epochs': history.params['epochs'], 'steps': history.params['steps']}, open('fit.json', 'w'))\n"
    "json.dump([layer.get_config() for layer in model.layers], open('layers.json', 'w'))\n"
    "json.dump({'tensorflow': tf.__version__, 'keras': tf.keras.__version__}, open('versions.json', 'w'))"
)


def execute_notebook(root, data_dir, epochs, python=None, features="raw", **switches):
    """Run the committed notebook headless outside Colab in root (plus STATE_CELL); return the text it
    printed. python: another environment's interpreter to run it in (its own jupyter kernel).
    switches: hand_dropout=True, keep_last=True set the configuration cell's (SIGNTRAIN_HAND_DROPOUT=1 ...)."""
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(STATE_CELL))
    env = dict(os.environ, SIGNTRAIN_DATA=data_dir, SIGNTRAIN_EPOCHS=str(epochs), SIGNTRAIN_FEATURES=features,
               **{f"SIGNTRAIN_{name.upper()}": "1" for name, on in switches.items() if on})
    if python:
        path = os.path.join(root, "executed.ipynb")
        nbformat.write(notebook, path)
        execute = os.path.join(os.path.dirname(python), "jupyter-execute")  # nbclient's command, that environment's kernel
        result = subprocess.run([execute, "--inplace", "--timeout=1800", path], cwd=root, env=env,
                                capture_output=True, text=True, timeout=2400)
        assert result.returncode == 0, result.stderr[-3000:]
        notebook = nbformat.read(path, as_version=4)
    else:
        env_before = dict(os.environ)
        os.environ.update(env)
        try:
            NotebookClient(notebook, timeout=600, kernel_name="python3",
                           resources={"metadata": {"path": str(root)}}).execute()
        finally:
            os.environ.clear()
            os.environ.update(env_before)
    return "\n".join(output.get("text", "") for cell in code_cells(notebook) for output in cell.get("outputs", []))


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Run the notebook headless outside Colab on a small synthetic set, then dump its state."""
    root = tmp_path_factory.mktemp("notebook")
    data_dir = synth.write_mp_data(str(root / "MP_Data"), sequences=10, seed=11)
    os.remove(os.path.join(data_dir, "Yes", "3", "5.npy"))  # skipped by both the notebook and the package
    os.makedirs(os.path.join(data_dir, "Hello", "notes"))
    return root, data_dir, execute_notebook(root, data_dir, epochs=2)


def test_notebook_writes_the_specs_files(executed):
    root, _, outputs = executed
    for name in ("action_model.h5", "best_model.h5", "actions.npy", "confusion_matrix.png", "training_history.png"):
        assert os.path.getsize(root / name) > 0, name
    assert os.path.exists(root / "action_model_savedmodel" / "saved_model.pb")
    assert np.load(root / "actions.npy").tolist() == list(config.SPEC_ACTIONS)
    assert "skipped 1 sequences" in outputs and "no GPU" in outputs
    assert "saving your model as an HDF5 file" not in outputs  # the legacy notice is filtered


def test_notebook_and_package_agree(executed):
    root, data_dir, _ = executed
    state = np.load(root / "state.npz")
    dataset = data.load_dataset(data_dir)
    np.testing.assert_array_equal(state["X"], dataset.X)  # same X/y from the same folder
    np.testing.assert_array_equal(state["y"].argmax(1), dataset.y)
    _, test_idx = data.split_indices(dataset.y, seed=42)
    np.testing.assert_array_equal(state["X_test"], dataset.X[test_idx])  # same split
    ours = [layer.get_config() for layer in model_lib.build_model(10).layers]
    theirs = json.load(open(root / "layers.json"))
    strip = lambda c: {k: v for k, v in c.items() if k not in ("name", "seed")}  # noqa: E731
    assert [strip(json.loads(json.dumps(c))) for c in ours] == [strip(c) for c in theirs]


def test_reported_test_accuracy_is_on_X_test(executed):
    from tensorflow import keras

    root, _, outputs = executed
    reported = float(re.search(r"Test accuracy: ([0-9.]+)", outputs).group(1))
    state = np.load(root / "state.npz")
    shipped = keras.models.load_model(root / "action_model.h5")
    predictions = shipped.predict(state["X_test"], verbose=0).argmax(1)
    assert reported == pytest.approx(np.mean(predictions == state["y_test"].argmax(1)), abs=1e-4)
    assert f"({len(state['X_test'])} test sequences)" in outputs


UNIT_ROUNDOFF = 2.0 ** -24  # float32's: one rounding changes a value by at most this much, relatively


def float32_sum_error(count):
    """gamma_{count}: summing `count` float32 values in any order (pairwise, blocked, one by one) and
    dividing once is off by at most this times the sum of their absolute values over count
    (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., eq. 4.4 and lemma 3.1)."""
    spent = count * UNIT_ROUNDOFF
    assert spent < 0.01  # the bound holds (and means something) only while count * u is small
    return spent / (1 - spent)


def statistics_off_by(model, X):
    """For each BatchNorm layer of `model`: how far its moving mean and variance are from the exact
    statistics of its input over X (the input as the model computes it at inference, with the layers
    before it as they are), in units of what float32 arithmetic may be off by. Above 1: another
    statistic than the exact one.

    What float32 may be off by, over n values per channel (rows x steps): the mean's sum, gamma_n x
    mean|x| (the error scales with the values' size, not with the mean: a mean near 0 of values near
    0.5 carries ~1e-4 x 0.5 at n = 2,000); the variance, a mean of n squared differences (non-negative,
    so gamma_n x the variance) each rounded about 3 times, plus the mean's error squared. The exact
    side is computed in float64 from the same float32 activations."""
    from tensorflow import keras

    off = []
    for layer in (layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)):
        hidden = keras.Model(model.inputs, layer.input).predict(X, batch_size=256, verbose=0).astype(np.float64)
        values = hidden.reshape(-1, hidden.shape[-1])
        n = len(values)
        mean, variance = values.mean(axis=0), values.var(axis=0)
        mean_bound = float32_sum_error(n + 1) * np.abs(values).mean(axis=0)
        variance_bound = float32_sum_error(n + 4) * variance + mean_bound ** 2
        have_mean, have_variance = (np.asarray(w, np.float64) for w in layer.get_weights()[2:])
        off.append(max(np.max(np.abs(have_mean - mean) / mean_bound),
                       np.max(np.abs(have_variance - variance) / variance_bound)))
    return off


def test_notebook_and_package_compute_the_same_batchnorm_statistics(executed):
    """The notebook's PreciseBatchNorm callback ran before each validation: the checkpoint it kept
    holds the exact statistics of its own weights over the training rows (float32 sums, within
    their rounding bound), and signtrain.training.precise_bn computes the same statistics for those weights
    and rows (float64 sums). Statistics over other rows are told apart."""
    from signtrain.training import precise_bn

    root, _, outputs = executed
    state = np.load(root / "state.npz")
    X_fit = state["X_fit"]
    assert len(X_fit) == data.fit_rows(len(state["X"]) - len(state["X_test"]))
    best = model_lib.load_model(str(root / "best_model.h5"))
    notebook = statistics_off_by(best, X_fit)
    assert len(notebook) == 3 and max(notebook) <= 1, notebook

    precise_bn.recompute(best, X_fit, np.arange(len(X_fit)))
    package = statistics_off_by(best, X_fit)
    assert max(package) <= 1, package
    variances = [layer.moving_variance.numpy() for layer in best.layers if "batch_normalization" in layer.name]
    assert not any(np.allclose(variance, 1.0) for variance in variances)  # real statistics, not a fresh layer's

    # A wrong statistic fails: the same computation over the fit rows and the test rows (a leak), or
    # over all but the last ten fit rows.
    precise_bn.recompute(best, np.concatenate([X_fit, state["X_test"]]), np.arange(len(X_fit) + len(state["X_test"])))
    assert max(statistics_off_by(best, X_fit)) > 1
    precise_bn.recompute(best, X_fit, np.arange(len(X_fit) - 10))
    assert max(statistics_off_by(best, X_fit)) > 1


@pytest.fixture(scope="module")
def executed_on_colab_stack(tmp_path_factory):
    """The notebook run headless under Colab's TensorFlow and Keras (the second environment `make test`
    makes: SIGNTRAIN_COLAB_PYTHON), on a real recording by another person, every spec default."""
    from conftest import colab_python, unpack_realdata

    python = colab_python()
    root = tmp_path_factory.mktemp("colab")
    data_dir = unpack_realdata("lujamanandhar_10signs.npz", root / "MP_Data")
    outputs = execute_notebook(root, data_dir, epochs=200, python=python)
    return root, data_dir, outputs


@pytest.mark.slow
def test_the_notebook_runs_on_colabs_versions_and_reports_what_it_ships(executed_on_colab_stack):
    from tensorflow import keras

    root, data_dir, outputs = executed_on_colab_stack
    versions = json.load(open(root / "versions.json"))
    assert versions == {"tensorflow": "2.19.0", "keras": "3.10.0"}  # the Makefile's COLAB_* pins
    for name in ("action_model.h5", "best_model.h5", "actions.npy", "confusion_matrix.png", "training_history.png"):
        assert os.path.getsize(root / name) > 0, name
    assert os.path.exists(root / "action_model_savedmodel" / "saved_model.pb")
    state = np.load(root / "state.npz")
    dataset = data.load_dataset(data_dir)
    np.testing.assert_array_equal(state["X"], dataset.X)
    assert np.load(root / "actions.npy").tolist() == dataset.actions
    # What it reports is what it ships, on X_test only: the Keras 3.10 file loads and scores the same here.
    reported = float(re.search(r"Test accuracy: ([0-9.]+)", outputs).group(1))
    shipped = keras.models.load_model(root / "action_model.h5", compile=False)
    accuracy = float(np.mean(shipped.predict(state["X_test"], verbose=0).argmax(1) == state["y_test"].argmax(1)))
    assert reported == pytest.approx(accuracy, abs=1e-4)
    # The package's full default run scores 96.7% on this recording (tests/test_realdata.py).
    assert accuracy >= 0.8, outputs[-3000:]


def _notebook_training_helpers(**namespace):
    """Cell 7's helper block (everything before the spec's training), run in namespace with the imports."""
    cells = code_cells(nbformat.read(NOTEBOOK, as_version=4))
    exec(cells[1].source, namespace)  # the imports cell
    exec(cells[6].source.split("# ---- the spec's training ----")[0], namespace)
    return namespace


def test_notebook_and_package_draw_the_same_batch_orders():
    """Cell 7's per-epoch order is the package's (signtrain.training.batches.epoch_batches) for the same rows and seed."""
    from signtrain.training import batches

    helpers = _notebook_training_helpers(HAND_DROPOUT=False)
    rows = np.arange(40, dtype=np.float32)[:, None]  # each row holds its own index
    pipeline = helpers["shuffled_batches"](rows, rows + 100, batch_size=config.DEFAULT_BATCH_SIZE)
    theirs = []
    for _ in range(3):  # fit iterates the pipeline once an epoch
        epoch = [(x.numpy()[:, 0], y.numpy()[:, 0]) for x, y in pipeline]
        assert all(len(x) == config.DEFAULT_BATCH_SIZE for x, _ in epoch[:-1]) and len(epoch[-1][0]) == 40 % 16
        assert all((y == x + 100).all() for x, y in epoch)  # labels travel with their rows
        theirs.append([int(v) for x, _ in epoch for v in x])
    package = batches.epoch_batches(40, config.DEFAULT_BATCH_SIZE, seed=config.DEFAULT_SEED)
    ours = [[int(v) for batch in package for v in batch.numpy()] for _ in range(3)]
    assert theirs == ours and theirs[0] != theirs[1] and sorted(theirs[0]) == list(range(40))


def _notebook_front_end():
    """The notebook's relative front-end, from its committed cells (imports, then cell 6 up to the model)."""
    cells = code_cells(nbformat.read(NOTEBOOK, as_version=4))
    namespace = {}
    exec(cells[1].source, namespace)  # the imports cell
    exec(cells[5].source.split("# ---- the model ----")[0], namespace)
    return namespace["relative_front_end"]


def test_the_notebooks_relative_front_end_computes_the_packages_numbers():
    from tensorflow import keras

    from conftest import realdata_file
    from signtrain.model import features

    frames = np.concatenate([np.load(realdata_file(name))["X"][::11][:15]
                             for name in ("akadeepanshu_6signs.npz", "ismokedata_6signs.npz")]).astype(np.float32)
    inputs = keras.Input((config.SEQUENCE_LENGTH, config.NUM_FEATURES))
    net = keras.Model(inputs, _notebook_front_end()(inputs))
    assert not net.trainable_weights  # fixed: only the spec's layers train
    np.testing.assert_allclose(net.predict(frames, verbose=0), features.relative_numpy(frames), atol=2e-5, rtol=1e-5)


@pytest.mark.slow
def test_the_notebook_with_relative_features_ships_a_model_for_raw_frames(tmp_path):
    """The configuration for a new person (relative features, hand dropout, the last epoch kept)."""
    from tensorflow import keras

    data_dir = synth.write_mp_data(str(tmp_path / "MP_Data"), actions=["Hello", "Yes", "No"], sequences=10, seed=4)
    outputs = execute_notebook(tmp_path, data_dir, epochs=3, features="relative", hand_dropout=True, keep_last=True)
    assert "Test accuracy" in outputs
    # KEEP_LAST: every epoch checkpointed whatever its validation accuracy ("Epoch N: saving model to",
    # not "Epoch N: val_categorical_accuracy improved from ..., saving model to"), the last one kept.
    assert set(re.findall(r"Epoch (\d+): saving model to", outputs)) == {"1", "2", "3"}
    shipped = keras.models.load_model(str(tmp_path / "action_model.h5"))  # plain load_model, no custom objects
    state = np.load(tmp_path / "state.npz")
    assert shipped.input_shape == (None, config.SEQUENCE_LENGTH, config.NUM_FEATURES)
    assert shipped.predict(state["X_test"], verbose=0).shape == (len(state["X_test"]), 3)
    layers = json.load(open(tmp_path / "layers.json"))
    assert sum(layer.get("name", "").startswith("lstm") for layer in layers) == 3


def test_the_notebooks_early_stopping_checkpoint_and_fit_are_the_packages_defaults(executed):
    """What the executed notebook's EarlyStopping, ModelCheckpoint and model.fit held are signtrain.config's
    defaults, which `signtrain train` uses: validation on the rows validation_split=0.15 holds out,
    batches of 16 (the steps of an epoch), the epochs asked for."""
    root, _, _ = executed
    fit = json.load(open(root / "fit.json"))
    assert (fit["monitor"], fit["patience"], fit["restore"]) == (config.MONITOR, config.DEFAULT_PATIENCE, True)
    assert (fit["checkpoint_monitor"], fit["save_best_only"]) == (config.MONITOR, True)
    assert fit["fit_rows"] == data.fit_rows(fit["n_train"]) and fit["n_val"] > 0
    assert fit["steps"] == -(-fit["fit_rows"] // config.DEFAULT_BATCH_SIZE) and fit["epochs"] == 2


def test_the_notebooks_hand_dropout_is_the_packages():
    """Cell 7's drop_hands zeroes exactly what signtrain.training.hand_dropout.drop_hands zeroes for a seed."""
    import tensorflow as tf

    from signtrain.training import hand_dropout

    namespace = _notebook_training_helpers(HAND_DROPOUT=True)
    frames = tf.constant(np.random.default_rng(3).uniform(0.1, 1, (64, 30, 1662)).astype(np.float32))
    for seed in ([1, 2], [7, 0]):
        ours = hand_dropout.drop_hands(frames, tf.constant(seed, tf.int64)).numpy()
        np.testing.assert_array_equal(namespace["drop_hands"](frames, tf.constant(seed, tf.int64)).numpy(), ours)
        assert (ours == 0).any()
