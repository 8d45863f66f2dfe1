"""--strategy: tf.distribute on two logical CPU devices gives the outputs of a one-device run."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from signtrain.data import dataset as data, synth
from signtrain.model import network as model_lib
from signtrain.training import distribute, precise_bn


def _train(tmp_path, name, data_dir, *flags, logical_cpus=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop(distribute.LOGICAL_CPUS_VARIABLE, None)
    if logical_cpus:
        env[distribute.LOGICAL_CPUS_VARIABLE] = str(logical_cpus)
    out = tmp_path / name
    result = subprocess.run(
        [sys.executable, "-m", "signtrain.cli", "train", "--data", str(data_dir), "--out", str(out),
         "--epochs", "8", "--patience", "8", *flags],
        capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(out / "metrics.json") as handle:
        metrics = json.load(handle)
    with open(out / "args.yaml") as handle:
        args = yaml.safe_load(handle)
    with open(out / "results.csv") as handle:
        losses = [float(row["loss"]) for row in csv.DictReader(handle)]
    metrics["first_train_loss"], metrics["final_train_loss"] = losses[0], losses[-1]
    return metrics, args, result.stdout


def test_mirrored_on_two_cpu_devices_trains_as_one_device_with_exact_statistics(tmp_path):
    data_dir = synth.write_mp_data(str(tmp_path / "MP_Data"), actions=["Hello", "Yes", "No", "Stop"], sequences=16)
    # Two replicas of 16 = one device with batches of 32 (gradients averaged over the 32).
    mirrored, mirrored_args, stdout = _train(tmp_path, "mirrored", data_dir, "--strategy", "mirrored",
                                             logical_cpus=2)
    single, single_args, _ = _train(tmp_path, "single", data_dir, "--no-fast", "--batch-size", "32")
    assert "2 replicas" in stdout
    assert mirrored_args["strategy"] == "mirrored" and mirrored_args["fast"] is False
    assert single_args["strategy"] == "none"
    for name in ("action_model.h5", "actions.npy", "best_model.h5", "confusion_matrix.png"):
        assert (tmp_path / "mirrored" / name).exists()
    assert mirrored["n_train"] == single["n_train"] and mirrored["n_test"] == single["n_test"]
    assert mirrored["epochs_run"] == single["epochs_run"] == 8
    # Same data, split, initial weights and batch order (signtrain.training.batches.epoch_batches on both); only
    # the batch statistics differ (per replica of 16, against 32), so the first epoch agrees closely
    # and the runs then drift apart as training is chaotic.
    assert abs(mirrored["first_train_loss"] - single["first_train_loss"]) < 0.05 * single["first_train_loss"]
    for run in (mirrored, single):  # both learned
        assert run["final_train_loss"] < 0.5 * run["first_train_loss"]
    # Exact BatchNorm statistics under the strategy: the kept model holds those of its own weights
    # over the training rows (as signtrain.training.precise_bn computes them), not Keras' moving averages.
    assert mirrored["precise_bn"] is True
    dataset = data.load_dataset(str(data_dir))
    train_idx, _ = data.split_indices(dataset.y, seed=mirrored_args["seed"])
    rows = dataset.X[train_idx[:data.fit_rows(len(train_idx))]]
    best = model_lib.load_model(str(tmp_path / "mirrored" / "best_model.h5"))
    kept = [layer.get_weights()[2:] for layer in best.layers if "batch_normalization" in layer.name]
    precise_bn.recompute(best, rows, np.arange(len(rows)))
    for have, layer in zip(kept, [layer for layer in best.layers if "batch_normalization" in layer.name], strict=True):
        np.testing.assert_allclose(have[0], layer.moving_mean.numpy(), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(have[1], layer.moving_variance.numpy(), rtol=1e-4, atol=1e-6)


def test_logical_cpus_must_be_a_number(monkeypatch):
    monkeypatch.setenv(distribute.LOGICAL_CPUS_VARIABLE, "two")
    with pytest.raises(ValueError, match="whole number"):
        distribute.make_strategy("mirrored")


@pytest.mark.parametrize("tf_config, chief", [
    ("", True),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}', True),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}', False),
    ('{"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "worker", "index": 0}}', False),
    ('{"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "chief", "index": 0}}', True),
])
def test_the_chief_is_the_task_tf_config_names_first(monkeypatch, tf_config, chief):
    """Who writes the run folder (train.train: a worker removes its own): the chief, else worker 0."""
    monkeypatch.setenv("TF_CONFIG", tf_config)
    assert distribute.is_chief() is chief
