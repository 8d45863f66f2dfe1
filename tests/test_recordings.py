"""Several recordings in one training (--data given more than once) and cv --by recording."""

import json
import os

import numpy as np
import pytest
import yaml

from signtrain import cli
from signtrain.data import recordings, synth
from signtrain.training import crossval, fitting, train as train_lib


@pytest.fixture
def two_people(tmp_path):
    """Alice's and Bob's MP_Data, the same signs spelled differently, Bob without Please."""
    alice = synth.write_mp_data(str(tmp_path / "people" / "alice"), actions=["Hello", "Thank_You", "Please"],
                                sequences=10, seed=1)
    bob = synth.write_mp_data(str(tmp_path / "people" / "bob" / "MP_Data"), actions=["Hello", "Thank_You"],
                              sequences=4, seed=2)
    os.rename(os.path.join(bob, "Hello"), os.path.join(bob, "hello"))
    os.rename(os.path.join(bob, "Thank_You"), os.path.join(bob, "thank you"))
    return alice, bob


def test_sign_names_are_matched_and_every_row_keeps_its_recording(two_people):
    alice, bob = two_people
    dataset = recordings.load([alice, bob])
    assert dataset.actions == ["Hello", "Please", "Thank_You"]  # the first recording's spelling, sorted
    assert dataset.recordings == ["alice", "bob"]  # bob's MP_Data is named by its parent folder
    assert np.bincount(dataset.recording).tolist() == [30, 8] and len(dataset.X) == 38
    bob_rows = dataset.recording == 1
    assert sorted(set(dataset.y[bob_rows].tolist())) == [0, 2]  # hello -> Hello, thank you -> Thank_You
    assert all(name.startswith("bob/") for _, name in np.array(dataset.sequences, dtype=object)[bob_rows])
    assert ("thank you", "bob/0") in dataset.sequences  # the folder on disk, the take by recording
    assert recordings.folder_of([alice, bob], "thank you", "bob/0") == os.path.join(bob, "thank you", "0")
    assert recordings.summary(dataset)[1] == {"name": "bob", "sequences": {"Hello": 4, "Please": 0, "Thank_You": 4}}
    with pytest.raises(ValueError, match=r"--actions names \['Goodbye'\] but no --data folder"):
        recordings.load([alice, bob], actions=["Hello", "Goodbye"])


def test_a_folder_of_mp_data_trees_is_one_recording_each(two_people, tmp_path):
    alice, bob = two_people
    assert recordings.expand(str(tmp_path / "people")) == [alice, bob]  # bob/MP_Data: the tree inside
    assert recordings.expand(alice) == [alice]  # an MP_Data tree itself is one recording
    assert recordings.expand([alice, bob]) == [alice, bob]


def test_a_run_on_two_recordings_records_them(two_people, tmp_path, capsys):
    alice, bob = two_people
    run_dir = str(tmp_path / "run")
    assert cli.main(["train", "--data", alice, "--data", bob, "--epochs", "1", "--out", run_dir]) == 0
    out = capsys.readouterr().out
    assert "recordings: 2" in out and "bob: 8 sequences (Hello 4, Please 0, Thank_You 4)" in out
    metrics = json.load(open(os.path.join(run_dir, "metrics.json")))
    assert [entry["name"] for entry in metrics["recordings"]] == ["alice", "bob"]
    # signtrain export reads the test sequences again, each from its own recording's folder.
    assert cli.main(["export", run_dir, "--format", "onnx"]) == 0
    assert json.load(open(os.path.join(run_dir, "metrics.json")))["exports"]["onnx"]["max_abs_diff"] < 1e-4
    assert "ONE_RECORDING" not in {item["code"] for item in metrics["diagnostics"]}
    args = yaml.safe_load(open(os.path.join(run_dir, "args.yaml")))
    assert args["data"] == [alice, bob]
    names = args["split"]["train"] + args["split"]["test"]
    assert len(names) == 38 == len(set(names)) and any(name.startswith("thank you/bob/") for name in names)


def test_a_run_on_one_recording_says_what_a_new_person_gets(two_people, tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    assert cli.main(["train", "--data", two_people[0], "--epochs", "1", "--out", run_dir]) == 0
    assert "info    ONE_RECORDING: trained on one recording" in capsys.readouterr().out
    metrics = json.load(open(os.path.join(run_dir, "metrics.json")))
    item = next(item for item in metrics["diagnostics"] if item["code"] == "ONE_RECORDING")
    assert "--data A --data B" in item["message"] and "--features relative" in item["message"]
    assert "cv --by recording" in item["message"] and metrics["recordings"][0]["sequences"]["Hello"] == 10


def test_cv_by_recording_tests_each_person_on_a_model_trained_on_the_others(two_people, tmp_path, monkeypatch,
                                                                            capsys):
    alice, bob = two_people
    trained_on = []
    real_plan = fitting.plan_fit

    def spy(settings, X, y, split, seed, *args, **kwargs):
        trained_on.append(len(split.training))
        return real_plan(settings, X, y, split, seed, *args, **kwargs)

    monkeypatch.setattr(fitting, "plan_fit", spy)
    assert cli.main(["cv", "--data", alice, "--data", bob, "--by", "recording", "--epochs", "1",
                     "--out", str(tmp_path / "cv")]) == 0
    out = capsys.readouterr().out
    assert "held out alice (1/2)" in out and "held out bob (2/2)" in out
    assert "leave-one-recording-out: mean accuracy on a recording the model never saw" in out
    summary = json.load(open(tmp_path / "cv" / "cv.json"))
    assert [(r["recording"], r["n_test"]) for r in summary["recording_results"]] == [("alice", 30), ("bob", 8)]
    assert trained_on == [8, 30]  # every row of the other recording, none of the held-out one
    # Only alice signed Please: it is tested only by the model trained on bob, which never saw it (issue 26 §5).
    assert summary["by"] == "recording" and "Please" not in summary["recall_per_class"]
    assert {"Hello", "Thank_You"} <= set(summary["recall_per_class"])
    assert all(len(r["test_accuracy_ci95"]) == 2 for r in summary["recording_results"])


def test_refusals_name_the_fix(two_people, tmp_path, capsys):
    alice, bob = two_people
    assert cli.main(["cv", "--data", alice, "--by", "recording", "--epochs", "1", "--out", str(tmp_path / "c")]) == 2
    assert "cv --by recording needs at least two recordings: give --data once per person" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "c")
    assert cli.main(["train", "--data", alice, "--data", bob, "--stream", "--out", str(tmp_path / "r")]) == 2
    assert "--stream reads one --data folder, 2 recordings were given" in capsys.readouterr().err
    with pytest.raises(ValueError, match="cv --by recording needs at least two"):
        crossval.cross_validate(train_lib.TrainSettings(data=alice, epochs=1), by="recording")
