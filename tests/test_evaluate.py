"""A model scored on another recording (names matched loosely), and K-fold cross-validation."""

import json
import os
import shutil

import numpy as np
import pytest

from signtrain import cli, config
from signtrain.data import dataset as data, names, synth
from signtrain.report import evaluate


def test_names_match_loosely_and_by_alias():
    model_actions = ["Hello", "Thank_You", "I_Love_You", "No"]
    matched = names.match_actions(model_actions, ["hello", "thank you", "iloveyou", "goodbye", "NO"])
    assert matched == {"hello": "Hello", "thank you": "Thank_You", "iloveyou": "I_Love_You", "NO": "No"}
    assert names.match_actions(model_actions, ["thanks"]) == {}
    aliases = names.parse_aliases("thanks=thank_you")
    assert names.match_actions(model_actions, ["thanks"], aliases) == {"thanks": "Thank_You"}
    assert names.match_actions(model_actions, ["thanks"], [["Thank_You", "thanks"]]) == {"thanks": "Thank_You"}
    with pytest.raises(ValueError, match="both match the sign 'Hello'"):
        names.match_actions(model_actions, ["hello", "HELLO"])
    with pytest.raises(ValueError, match="--alias takes name=name pairs"):
        names.parse_aliases("thanks")


@pytest.fixture
def other_recording(tmp_path):
    """Another 'person': a new synthetic seed, folders named the way other recorders name them."""
    root = synth.write_mp_data(str(tmp_path / "Other_Person"), actions=["Hello", "Thank_You", "Yes", "Sorry"],
                               sequences=4, seed=99)
    os.rename(os.path.join(root, "Hello"), os.path.join(root, "hello"))
    os.rename(os.path.join(root, "Thank_You"), os.path.join(root, "thanks"))
    os.rename(os.path.join(root, "Sorry"), os.path.join(root, "Apology"))
    return root


def test_evaluate_a_run_on_another_recording(short_run, other_recording, tmp_path, capsys):
    _, run_dir, _ = short_run
    run_copy = shutil.copytree(run_dir, tmp_path / "run")  # the shared run folder stays as it is
    assert cli.main(["evaluate", "--model", str(run_copy), "--data", other_recording, "--alias", "thanks=Thank_You"]) == 0
    out = capsys.readouterr().out
    assert "matched: Yes -> Yes, hello -> Hello, thanks -> Thank_You" in out
    assert "not matched (ignored): Apology" in out
    result = json.load(open(run_copy / "evaluations" / "otherperson.json"))
    assert result["n"] == 12 and set(result["matched"].values()) == {"Hello", "Thank_You", "Yes"}
    assert sorted(result["signs_without_data"]) == sorted(set(config.SPEC_ACTIONS) - {"Hello", "Thank_You", "Yes"})
    matrix = np.array(result["confusion_matrix"])
    assert matrix.sum() == 12 and result["accuracy"] == pytest.approx(np.trace(matrix) / 12)
    assert cli.main(["evaluate", "--model", str(run_copy), "--data", other_recording]) == 0
    assert os.path.exists(run_copy / "evaluations" / "otherperson2.json")  # the first one is kept
    assert "thanks" not in json.load(open(run_copy / "evaluations" / "otherperson2.json"))["matched"]


def test_test_data_that_matches_nothing_is_refused_before_training(short_run, tmp_path, capsys):
    _, _, data_dir = short_run
    elsewhere = synth.write_mp_data(str(tmp_path / "Elsewhere"), actions=["Hello"], sequences=1, seed=1)
    os.rename(os.path.join(elsewhere, "Hello"), os.path.join(elsewhere, "Goodbye"))
    assert cli.main(["train", "--data", data_dir, "--test-data", elsewhere]) == 2
    captured = capsys.readouterr()
    assert "no folder of" in captured.err and "--alias" in captured.err and "Epoch 1" not in captured.out
    assert not os.path.exists("runs")


def test_train_with_test_data_and_cross_validation(tmp_path, capsys):
    data_dir = synth.write_mp_data(str(tmp_path / "MP_Data"), actions=["Hello", "Yes", "Please"], sequences=10, seed=3)
    other = synth.write_mp_data(str(tmp_path / "Other"), actions=["Hello", "Yes"], sequences=3, seed=4)
    assert cli.main(["train", "--data", data_dir, "--epochs", "2", "--test-data", other]) == 0
    metrics = json.load(open(os.path.join("runs", "train", "exp", "metrics.json")))
    external = metrics["external_test"]
    assert external["n"] == 6 and external["matched"] == {"Hello": "Hello", "Yes": "Yes"}
    assert "accuracy on " + other in capsys.readouterr().out

    assert cli.main(["cv", "--data", data_dir, "--folds", "2", "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    summary = json.load(open(os.path.join("runs", "cv", "exp", "cv.json")))
    assert summary["folds"] == 2 and len(summary["fold_results"]) == 2
    assert [r["n_test"] for r in summary["fold_results"]] == [15, 15]
    assert np.array(summary["confusion_matrix"]).sum() == 30
    accuracies = [r["test_accuracy"] for r in summary["fold_results"]]
    assert summary["mean_test_accuracy"] == pytest.approx(np.mean(accuracies))
    assert set(summary["recall_per_class"]) == {"Hello", "Yes", "Please"}
    assert "2-fold x 1: mean test accuracy" in out
    assert cli.main(["cv", "--data", data_dir, "--folds", "11"]) == 2
    assert "needs at least 11 sequences of every sign" in capsys.readouterr().err


def test_each_fold_validates_on_every_sign_not_the_last_ones(tmp_path, monkeypatch):
    """KFold gives training rows in file order (sign by sign): validation_split's last 15% of them
    would be the last sign only. cross_validate shuffles them first, as train_test_split does."""
    from signtrain.training import crossval, fitting, train as train_lib

    data_dir = synth.write_mp_data(str(tmp_path / "MP_Data"), actions=["Hello", "Yes", "Please"], sequences=10, seed=3)
    validated = []
    real_plan = fitting.plan_fit

    def recording_plan(settings, X, y, split, seed, *args, **kwargs):
        validated.append(set(np.argmax(y[split.validation], axis=1).tolist()))
        return real_plan(settings, X, y, split, seed, *args, **kwargs)

    monkeypatch.setattr(fitting, "plan_fit", recording_plan)
    crossval.cross_validate(train_lib.TrainSettings(data=data_dir, epochs=1), folds=2)
    assert len(validated) == 2 and all(len(signs) >= 2 for signs in validated)
