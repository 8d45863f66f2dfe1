"""Each rule of ml/troubleshooting_training.md fires on numbers built to show it, and only then."""

import copy
import os
import re

import numpy as np
import pytest

from conftest import REPO
from signtrain.data import check, dataset as data, synth
from signtrain.report import diagnose
from signtrain.report.metrics import Metrics

ACTIONS = ["Hello", "Thank_You", "Help", "Yes", "No", "Please", "Sorry", "I_Love_You", "Stop", "More"]


def data_check_of(X, y, actions=ACTIONS):
    dataset = data.Dataset(X=X.astype(np.float32), y=y, actions=list(actions),
                           sequences=[(actions[label], str(i)) for i, label in enumerate(y)], skipped=[], notes=[])
    return check.summarize(dataset)


@pytest.fixture(scope="module")
def healthy():
    """A run that went well: 29/30 on the test split, curves that rise together, clean synthetic data."""
    X, y = synth.synth_arrays(sequences=6, seed=4)
    matrix = np.diag([3] * 10)
    matrix[6, 6], matrix[6, 5] = 2, 1
    metrics = {
        "test_accuracy": 29 / 30, "test_accuracy_ci95": [0.83, 0.99], "n_test": 30, "best_epoch": 60,
        "actions": ACTIONS, "confusion_matrix": matrix.tolist(), "data_check": data_check_of(X, y),
    }
    history = {
        "categorical_accuracy": list(np.linspace(0.2, 1.0, 90)), "val_categorical_accuracy": list(np.linspace(0.1, 0.98, 90)),
        "loss": list(np.linspace(2.3, 0.01, 90)), "val_loss": list(np.linspace(2.3, 0.1, 90)),
    }
    return metrics, history


def rules(metrics, history):
    """diagnose.diagnose on a metrics.json's content (the keys a test sets; the others as an older run lacks them)."""
    return diagnose.diagnose(Metrics.from_json(metrics), history)


def codes(metrics, history):
    return [item["code"] for item in rules(metrics, history)]


def test_a_healthy_run_finds_nothing(healthy):
    assert rules(*healthy) == []
    assert diagnose.format_diagnostics([]) == "diagnostics: found nothing to worry about"


def test_low_accuracy_and_one_class(healthy):
    metrics, history = copy.deepcopy(healthy)
    matrix = np.zeros((10, 10), int)
    matrix[:, 0] = 3  # everything predicted as Hello
    metrics.update(test_accuracy=0.1, test_accuracy_ci95=[0.03, 0.26], confusion_matrix=matrix.tolist())
    found = {item["code"]: item for item in rules(metrics, history)}
    assert set(found) >= {"LOW_ACCURACY", "ONE_CLASS", "OVERFITTING"}
    assert found["ONE_CLASS"]["message"] == "30 of 30 test sequences predicted as Hello"
    assert found["LOW_ACCURACY"]["message"].startswith("test accuracy 10% (95% interval 3%-26%)")
    assert found["LOW_ACCURACY"]["section"] == "ml/troubleshooting_training.md#low_accuracy"


def test_confused_pair_names_both_signs(healthy):
    metrics, history = copy.deepcopy(healthy)
    matrix = np.array(metrics["confusion_matrix"])
    matrix[9, 9], matrix[9, 2] = 1, 2  # More taken for Help
    metrics["confusion_matrix"] = matrix.tolist()
    [item] = rules(metrics, history)
    assert item["code"] == "CONFUSED_PAIR"
    assert item["message"] == "Help and More: 2 of 3 test sequences of More predicted as Help"
    assert item["evidence"] == {"true": "More", "predicted": "Help", "count": 2, "support": 3}


def test_overfitting_gap(healthy):
    metrics, history = copy.deepcopy(healthy)
    metrics["test_accuracy"] = 0.8
    history["categorical_accuracy"] = [1.0] * 90  # train accuracy at the best epoch: 100%
    assert codes(metrics, history) == ["OVERFITTING"]
    assert "train 100%, test 80%: gap 20 points" in rules(metrics, history)[0]["message"]


def test_not_learning_on_shuffled_labels(healthy):
    metrics, history = copy.deepcopy(healthy)
    history["val_categorical_accuracy"] = [0.1, 0.05, 0.12, 0.1] * 10
    history["categorical_accuracy"] = [0.1, 0.12, 0.14, 0.15] * 10
    metrics["test_accuracy"] = 0.1
    assert "NOT_LEARNING" in codes(metrics, history)
    message = next(i for i in rules(metrics, history) if i["code"] == "NOT_LEARNING")["message"]
    assert message == "validation accuracy never above 12% in 40 epochs (chance is 10%)"


def test_nan_loss(healthy):
    metrics, history = copy.deepcopy(healthy)
    history["loss"][5:] = [float("nan")] * (len(history["loss"]) - 5)
    assert codes(metrics, history) == ["NAN_LOSS"]
    assert rules(metrics, history)[0]["message"] == "loss is NaN or inf from epoch 6"


def test_unstable_training_names_the_swing_and_the_flag(healthy):
    metrics, history = copy.deepcopy(healthy)
    # The last 10 epochs jump between 30% and 80% (sd 0.25); the healthy curve's last 10 move by ~0.03.
    history["val_categorical_accuracy"][-10:] = [0.3, 0.8] * 5
    metrics["precise_bn"] = False
    [item] = rules(metrics, history)
    assert item["code"] == "UNSTABLE_TRAINING" and item["section"].endswith("#unstable_training")
    assert item["message"] == ("validation accuracy swings from epoch to epoch: sd 0.25 over the last 10 epochs, "
                               "jumps of up to 50 points, 30% to 80% (trained with --no-precise-bn: train "
                               "without it)")
    assert item["evidence"]["swing"] == pytest.approx(0.25) and item["evidence"]["largest_jump"] == pytest.approx(0.5)
    metrics["precise_bn"] = True
    assert "--no-precise-bn" not in rules(metrics, history)[0]["message"]
    # Just under the threshold: nothing; too few epochs to judge: nothing.
    history["val_categorical_accuracy"][-10:] = [0.72, 0.9] * 5  # sd 0.09
    assert rules(metrics, history) == []
    assert rules(metrics, {key: values[:9] for key, values in history.items()}) == []
    assert diagnose.validation_swing([0.5]) == 0.0 and diagnose.validation_swing([]) == 0.0


def test_data_rules_on_data_built_to_show_them(healthy):
    metrics, history = copy.deepcopy(healthy)
    X, y = synth.synth_arrays(sequences=6, seed=4)
    sorry = ACTIONS.index("Sorry")
    X[y == sorry, :, 1536:] = 0  # no hand ever seen for Sorry
    metrics["data_check"] = data_check_of(X, y)
    [item] = rules(metrics, history)
    assert (item["code"], item["message"]) == ("HANDS_MISSING", "100% of frames of Sorry have no hand at all")

    X, y = synth.synth_arrays(sequences=6, seed=4, left_handed_fraction=0.5)
    metrics["data_check"] = data_check_of(X, y)
    assert set(codes(metrics, history)) == {"MIXED_HANDEDNESS"}

    X, y = synth.synth_arrays(sequences=6, seed=4)
    X[: len(X) // 2, :, 0:132:4] = 1 - X[: len(X) // 2, :, 0:132:4]  # half the takes flipped left-right
    metrics["data_check"] = data_check_of(X, y)
    [item] = rules(metrics, history)
    assert item["code"] == "MIRRORED_CAMERA" and item["message"].startswith("30 of 60 sequences were recorded mirrored")

    X, y = synth.synth_arrays(sequences=6, seed=4)
    near = np.arange(len(X)) % 2 == 0  # every other take much closer to the camera
    centre = X[near][..., 0:132:4].mean()
    X[near, :, 0:132:4] = centre + (X[near, :, 0:132:4] - centre) * 1.9
    metrics["data_check"] = data_check_of(X, y)
    assert "DISTANCE_SESSIONS" in codes(metrics, history)


def test_document_and_code_share_the_rule_codes():
    text = open(os.path.join(REPO, "ml", "troubleshooting_training.md"), encoding="utf-8").read()
    anchors = set(re.findall(r'<a id="([a-z_]+)"></a>', text))
    headings = set(re.findall(r"^## ([A-Z_]+):", text, flags=re.M))
    table = set(re.findall(r"\| `([A-Z_]+)` \|", text))
    in_code = set(diagnose.RULES) | {diagnose.OUT_OF_MEMORY}
    assert headings == in_code and table == in_code
    assert anchors == {code.lower() for code in in_code}
    for spec_row in ("<80% accuracy", "Two signs always confused", "High train, low test (>15% gap)",
                     "Low train AND test", "Predicts one class for everything", "OOM on Colab"):
        assert spec_row in text


def test_one_recording_says_what_a_new_person_got_and_what_to_do(monkeypatch):
    monkeypatch.setitem(diagnose.NEW_PERSON_MEASURED, "raw", 0.39)
    one = {"recordings": [{"name": "data", "sequences": {"Hello": 30}}], "features": "raw"}
    [(message, evidence)] = list(diagnose._one_recording(Metrics.from_json(one), {}))
    assert "measured 39% on a person the model never saw with --features raw" in message
    assert "--data A --data B" in message and "--features relative" in message and "cv --by recording" in message
    assert evidence["measured_on_a_new_person"] == 0.39
    relative = dict(one, features="relative")
    assert "with --features relative, and" not in next(diagnose._one_recording(Metrics.from_json(relative), {}))[0]
    two = {"recordings": [{"name": "a"}, {"name": "b"}]}
    assert not list(diagnose._one_recording(Metrics.from_json(two), {}))
    assert not list(diagnose._one_recording(Metrics(), {}))
    assert diagnose.RULES["ONE_RECORDING"][0] == "info"
