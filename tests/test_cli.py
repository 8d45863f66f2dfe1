"""A short training run through the CLI, and everything it must leave behind."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from conftest import REPO
from signtrain import cli, config

RUN_FILES = [
    "action_model.h5", "best_model.h5", "actions.npy", "action_model_savedmodel", "confusion_matrix.png",
    "training_history.png", "classification_report.txt", "results.csv", "logs", "args.yaml", "metrics.json",
]
METRICS_KEYS = [
    "test_accuracy", "test_loss", "best_val_accuracy", "epochs_run", "n_train", "n_val", "n_test", "actions",
    "per_class", "confusion_matrix", "skipped_sequences", "train_seconds", "seed", "versions", "features", "recordings",
]


def test_run_folder_holds_every_file(short_run):
    _, run_dir, _ = short_run
    assert sorted(os.listdir(run_dir)) == sorted(RUN_FILES)
    assert os.listdir(os.path.join(run_dir, "logs"))  # TensorBoard wrote event files
    assert os.path.exists(os.path.join(run_dir, "action_model_savedmodel", "saved_model.pb"))
    assert [line.split()[0] for line in open(os.path.join(run_dir, "classification_report.txt")) if line.strip()][
        1:11
    ] == list(config.SPEC_ACTIONS)  # one report row per action, spec order


def test_metrics_json(short_run):
    _, run_dir, _ = short_run
    metrics = json.load(open(os.path.join(run_dir, "metrics.json")))
    for key in METRICS_KEYS:
        assert key in metrics, key
    assert metrics["actions"] == list(config.SPEC_ACTIONS)
    assert metrics["epochs_run"] == 3 and metrics["seed"] == 7 and metrics["features"] == "raw"
    # 99 usable sequences: 10 test (stratified, one each), 89 train of which Keras' validation_split
    # keeps floor(89 * 0.85) = 75 for fitting and 14 for validation.
    assert (metrics["n_test"], metrics["n_train"], metrics["n_val"]) == (10, 75, 14)
    assert metrics["skipped_sequences"] == [{"action": "Stop", "sequence": "4", "reason": "missing frame 17.npy"}]
    assert set(metrics["per_class"]) == set(config.SPEC_ACTIONS)
    assert sum(c["support"] for c in metrics["per_class"].values()) == 10
    matrix = np.array(metrics["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == 10
    assert metrics["test_accuracy"] == pytest.approx(np.trace(matrix) / 10)
    assert metrics["versions"]["tensorflow"] and metrics["versions"]["keras"].startswith("3")
    # 3 epochs learn next to nothing: the run says so itself, pointing at the document.
    codes = {item["code"] for item in metrics["diagnostics"]}
    assert "LOW_ACCURACY" in codes and codes <= {"LOW_ACCURACY", "NOT_LEARNING", "ONE_CLASS", "OVERFITTING",
                                                 "CONFUSED_PAIR", "ONE_RECORDING"}
    assert "ONE_RECORDING" in codes and metrics["recordings"] == [
        {"name": "data", "sequences": {action: 10 - (action == "Stop") for action in config.SPEC_ACTIONS}}]
    assert all(item["section"].startswith("ml/troubleshooting_training.md#") for item in metrics["diagnostics"])
    assert metrics["data_check"]["actions"]["Stop"]["skipped"] == 1
    with open(os.path.join(run_dir, "results.csv")) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 and "val_categorical_accuracy" in rows[0]
    assert metrics["best_val_accuracy"] == pytest.approx(max(float(r["val_categorical_accuracy"]) for r in rows))


def test_args_yaml_records_every_setting(short_run):
    _, run_dir, data_dir = short_run
    args = yaml.safe_load(open(os.path.join(run_dir, "args.yaml")))
    assert args["data"] == data_dir and args["epochs"] == 3 and args["patience"] == 30
    assert args["batch_size"] == 16 and args["seed"] == 7 and args["validation_split"] == 0.15
    assert args["actions"] == list(config.SPEC_ACTIONS) and args["num_features"] == 1662
    assert "tensorflow" in args["versions"]
    from signtrain.training import fast

    # The fast CPU step is the default without a GPU, and recorded as such.
    assert args["fast"] is fast.available() and args["strategy"] == "none"


def test_shipped_model_reloads_with_the_same_predictions(short_run):
    import tensorflow as tf
    from tensorflow import keras

    from signtrain.data import dataset as data

    _, run_dir, data_dir = short_run
    assert np.load(os.path.join(run_dir, "actions.npy")).tolist() == list(config.SPEC_ACTIONS)
    metrics = json.load(open(os.path.join(run_dir, "metrics.json")))
    assert metrics["reload_max_abs_diff"] < 1e-6  # reloaded file vs the in-memory trained model
    shipped = keras.models.load_model(os.path.join(run_dir, "action_model.h5"))  # as the live app does
    best = keras.models.load_model(os.path.join(run_dir, "best_model.h5"))
    dataset = data.load_dataset(data_dir)
    _, test_idx = data.split_indices(dataset.y, seed=7)
    X_test = dataset.X[test_idx]
    probabilities = shipped.predict(X_test, verbose=0)
    np.testing.assert_allclose(probabilities, best.predict(X_test, verbose=0), atol=1e-6)
    saved = tf.saved_model.load(os.path.join(run_dir, "action_model_savedmodel"))
    np.testing.assert_allclose(saved.serve(tf.constant(X_test)).numpy(), probabilities, atol=1e-5)
    accuracy = float(np.mean(probabilities.argmax(1) == dataset.y[test_idx]))
    assert metrics["test_accuracy"] == pytest.approx(accuracy)  # computed on X_test, in inference mode
    assert metrics["test_sequences"] == [list(dataset.sequences[i]) for i in test_idx]


def test_a_second_run_never_overwrites_the_first(short_run, capsys):
    root, run_dir, data_dir = short_run
    before = open(os.path.join(run_dir, "action_model.h5"), "rb").read()
    os.chdir(root)
    assert cli.main(["train", "--data", data_dir, "--epochs", "1", "--actions", "Hello,Yes"]) == 0
    assert "runs/train/exp2" in capsys.readouterr().out
    assert open(os.path.join(run_dir, "action_model.h5"), "rb").read() == before
    assert np.load(os.path.join(root, "runs", "train", "exp2", "actions.npy")).tolist() == ["Hello", "Yes"]
    # An explicit --out that holds a run is refused, with the fix.
    assert cli.main(["train", "--data", data_dir, "--out", run_dir]) == 2
    assert "never overwrites a run" in capsys.readouterr().err
    assert open(os.path.join(run_dir, "action_model.h5"), "rb").read() == before


def test_errors_are_one_clear_line(tmp_path, capsys):
    assert cli.main(["train", "--data", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "does not exist" in err and err.count("\n") == 1  # one line
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--data", "x", "--epochs", "many"])
    assert exit_info.value.code == 2
    assert "expected a whole number, got 'many'" in capsys.readouterr().err


def test_train_model_script_is_the_cli():
    script = os.path.join(REPO, "ml", "train_model.py")
    result = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, check=True)
    for flag in ("--data", "--out", "--epochs", "--patience", "--batch-size", "--seed", "--actions"):
        assert flag in result.stdout
    assert "runs/train/exp" in result.stdout
    result = subprocess.run([sys.executable, script], capture_output=True, text=True)
    assert result.returncode == 2 and "--data" in result.stderr
