"""--strategy: tf.distribute on two logical CPU devices gives the outputs of a one-device run."""

import csv
import json
import os
import subprocess
import sys

import pytest
import yaml

from signtrain import distribute, synth


def _train(tmp_path, name, data_dir, *flags, logical_cpus=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop(distribute.LOGICAL_CPUS_VARIABLE, None)
    if logical_cpus:
        env[distribute.LOGICAL_CPUS_VARIABLE] = str(logical_cpus)
    out = tmp_path / name
    result = subprocess.run(
        [sys.executable, "-m", "signtrain.cli", "train", "--data", str(data_dir), "--out", str(out),
         "--epochs", "20", "--patience", "20", *flags],
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


def test_mirrored_on_two_cpu_devices_matches_one_device(tmp_path):
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
    assert mirrored["epochs_run"] == single["epochs_run"] == 20
    # Same data, split and initial weights; batch statistics per replica and the order of the
    # batches differ, so the runs agree within noise, not bit for bit.
    assert abs(mirrored["final_train_loss"] - single["final_train_loss"]) < 0.35 * single["final_train_loss"] + 0.05
    for run in (mirrored, single):  # both learned (inference accuracy this early is BatchNorm noise)
        assert run["final_train_loss"] < 0.5 * run["first_train_loss"]


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
def test_only_the_chief_writes_the_run_folder(monkeypatch, tf_config, chief):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    assert distribute.is_chief() is chief
