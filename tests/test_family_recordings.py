"""Hostile input, round 3 (issue 26 §1 and §4), family 4: several recordings with duplicated,
renamed and colliding takes and sign folders.

No test row has an identical twin among the rows trained on, whatever recording, sign folder or
take number the copy carries; the same folder given twice and a recording that is a copy of another
are refused; one sign has one name (case, Unicode form, aliases and their chains).
"""

import os
import shutil
import unicodedata

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from signtrain import cli
from signtrain.data import check, dataset as data, names, recordings, synth
from signtrain.training import resume
from families import family_settings, fresh_copy
from test_hostile import run, snapshot

SIGNS = ["Hello", "Thank_You", "Yes"]


@pytest.fixture(scope="module")
def two_people(tmp_path_factory):
    root = tmp_path_factory.mktemp("people")
    a = synth.write_mp_data(str(root / "rA" / "MP_Data"), actions=SIGNS, sequences=8, seed=1)
    b = synth.write_mp_data(str(root / "rB" / "MP_Data"), actions=SIGNS, sequences=8, seed=2)
    return a, b


def _copy_take(source_tree, action, take, target_tree, target_action, target_take):
    shutil.copytree(os.path.join(source_tree, action, str(take)), os.path.join(target_tree, target_action, str(target_take)))


def _assert_no_test_row_has_a_twin_in_training(dataset, train_idx, test_idx):
    tested = {dataset.X[row].tobytes() for row in test_idx}
    assert not [row for row in train_idx if dataset.X[row].tobytes() in tested]


# Where a copied take lands: (from rA or rB, its sign, its take, into rA or rB, under which take number).
COPIES = st.lists(st.tuples(st.sampled_from([0, 1]), st.sampled_from(SIGNS), st.integers(0, 7), st.sampled_from([0, 1]),
                            st.integers(8, 12)), min_size=1, max_size=6)


@family_settings(25)
@given(copies=COPIES, seed=st.sampled_from([42, 7]))
def test_a_copied_take_is_never_trained_on_when_its_twin_is_tested(two_people, tmp_path, copies, seed):
    trees = [fresh_copy(two_people[0], tmp_path), fresh_copy(two_people[1], tmp_path)]
    for source, action, take, target, new_take in copies:
        if not os.path.exists(os.path.join(trees[target], action, str(new_take))):
            _copy_take(trees[source], action, take, trees[target], action, new_take)
    dataset = recordings.load(trees)
    split = resume.split_rows(dataset, seed)
    train_idx, test_idx = split.training, split.test
    _assert_no_test_row_has_a_twin_in_training(dataset, train_idx, test_idx)
    np.testing.assert_array_equal(test_idx, data.split_indices(dataset.y, seed=seed)[1])  # the test split as drawn
    assert len(train_idx) + len(test_idx) >= len(dataset.y) - len(copies)  # only copies are left out


def test_the_left_out_copies_are_said_and_the_warning_says_what_was_done(two_people, tmp_path, capsys):
    a = fresh_copy(two_people[0], tmp_path)
    dataset = data.load_dataset(a)
    test_row = data.split_indices(dataset.y, seed=42)[1][0]
    action, take = dataset.sequences[test_row]
    _copy_take(a, action, take, a, action, 20)  # the same take again, under another number
    dataset = data.load_dataset(a)
    split = resume.split_rows(dataset, 42)
    train_idx, test_idx = split.training, split.test
    _assert_no_test_row_has_a_twin_in_training(dataset, train_idx, test_idx)
    assert f"left out of training: 1 sequences identical to a test sequence ({action}/20)" in capsys.readouterr().out
    warning = [p for p in check.summarize(dataset)["problems"] if "identical" in p["message"]][0]
    assert warning["severity"] == "warning" and f"{action}/{take} = {action}/20" in warning["message"]
    assert "never trained on when its twin is in the test split" in warning["fix"]


def test_the_same_folder_twice_is_refused_naming_both_flags(two_people, capsys):
    a, _ = two_people
    for second in (a, a + os.sep, os.path.join(a, "..", "MP_Data")):
        code, output = run(capsys, "check", "--data", a, "--data", second)
        assert code != 0 and "(the 1st --data)" in output and "(the 2nd)" in output and "give each recording once" in output


def test_a_recording_that_is_a_copy_of_another_is_refused_by_train_check_and_cv(two_people, tmp_path, capsys):
    a = fresh_copy(two_people[0], tmp_path)
    copy = os.path.join(tmp_path, "copy", "MP_Data")
    shutil.copytree(a, copy)
    for command in (["check"], ["train", "--epochs", "1"], ["cv", "--by", "recording", "--epochs", "1"]):
        code, output = run(capsys, *command, "--data", a, "--data", copy)
        assert code != 0, command
        assert "is identical to a take of" in output and "give each recording once" in output, command
    assert not os.path.exists("runs")  # nothing trained, no run folder


def test_cv_by_recording_runs_the_data_check(two_people, tmp_path, capsys):
    a, b = fresh_copy(two_people[0], tmp_path), fresh_copy(two_people[1], tmp_path)
    _copy_take(b, "Hello", 0, b, "Yes", 9)  # one take filed under two signs: an error for train
    code, output = run(capsys, "cv", "--by", "recording", "--data", a, "--data", b, "--epochs", "1")
    assert code != 0 and "under different signs" in output and "verdict: problems: cannot train" in output


@pytest.mark.parametrize("second", ["thank you", "THANK-YOU", "thank_you"])
def test_one_recording_with_one_sign_under_two_names_is_refused(two_people, tmp_path, capsys, second):
    a = fresh_copy(two_people[0], tmp_path)
    before = snapshot(a)
    shutil.move(os.path.join(a, "Thank_You", "7"), os.path.join(a, second, "7") if os.makedirs(os.path.join(a, second))
                is None else None)
    for command in ("check", "train"):
        code, output = run(capsys, command, "--data", a)
        assert code != 0 and f"--data {a!r} holds folders that name one sign" in output
        assert "'Thank_You' and " + repr(second) in output or repr(second) + " and 'Thank_You'" in output
    assert set(snapshot(a)) == {path.replace(f"Thank_You{os.sep}7", f"{second}{os.sep}7") for path in before}


def test_unicode_forms_and_case_are_one_name(two_people, tmp_path):
    nfc, nfd = unicodedata.normalize("NFC", "Café"), unicodedata.normalize("NFD", "Café")
    assert nfc != nfd and names.name_key(nfc) == names.name_key(nfd) == names.name_key("CAFÉ")
    assert names.name_key("Straße") == names.name_key("STRASSE")  # casefold, not lower
    assert names.name_key("कम") != names.name_key("काम")  # a vowel sign (a combining mark) makes another word
    a, b = fresh_copy(two_people[0], tmp_path), fresh_copy(two_people[1], tmp_path)
    os.rename(os.path.join(a, "Hello"), os.path.join(a, nfc))
    os.rename(os.path.join(b, "Hello"), os.path.join(b, nfd))
    dataset = recordings.load([a, b])
    assert len(dataset.actions) == 3 and nfc in dataset.actions
    os.rename(os.path.join(b, nfd), os.path.join(a, nfd))  # both spellings in one recording
    with pytest.raises(ValueError, match="holds folders that name one sign"):
        data.find_actions(a)


def test_alias_chains_are_followed_and_an_alias_matching_nothing_is_named(two_people, tmp_path):
    chain = names.parse_aliases("thanks=ty,ty=Thank_You")
    assert names.match_actions(["Hello", "Thank_You"], ["thanks", "hello"], chain) == {"thanks": "Thank_You",
                                                                                     "hello": "Hello"}
    assert names.unmatched_aliases(chain, ["Thank_You"], ["thanks"]) == []  # ty is a link, not a typo
    assert names.unmatched_aliases([["thanks", "Thank_You"], ["Yes", "Nope"]], ["Thank_You", "Yes"],
                                   ["thanks", "Yes"]) == [("Yes", "Nope", ["Nope"])]
    with pytest.raises(ValueError, match="both are signs of the model"):
        names.match_actions(["Hello", "Yes"], ["Hello"], [["Hello", "Yes"]])
    a, b = fresh_copy(two_people[0], tmp_path), fresh_copy(two_people[1], tmp_path)
    os.rename(os.path.join(b, "Thank_You"), os.path.join(b, "thanks"))
    with pytest.warns(UserWarning, match="'nope' names no sign folder"):
        dataset = recordings.load([a, b], aliases=chain + [["nope", "Yes"]])
    assert sorted(dataset.actions) == SIGNS


def test_the_check_table_counts_every_recordings_takes_under_the_sign(two_people, tmp_path, capsys):
    a, b = fresh_copy(two_people[0], tmp_path), fresh_copy(two_people[1], tmp_path)
    os.rename(os.path.join(b, "Thank_You"), os.path.join(b, "thanks"))
    os.remove(os.path.join(b, "thanks", "3", "5.npy"))  # skipped
    frozen = np.load(os.path.join(b, "thanks", "4", "0.npy"))
    for frame in range(30):
        os.remove(os.path.join(b, "thanks", "4", f"{frame}.npy"))
        np.save(os.path.join(b, "thanks", "4", f"{frame}.npy"), frozen)
    code, output = run(capsys, "check", "--data", a, "--data", b, "--alias", "thanks=Thank_You")
    row = next(line for line in output.splitlines() if line.startswith("Thank_You "))
    found, usable, skipped, frozen_count = (int(value) for value in row.split()[1:5])
    assert (found, usable, skipped, frozen_count) == (16, 15, 1, 1)
    assert f"skipped {recordings.names([a, b])[1]}: thanks/3:" in output


@pytest.mark.slow
def test_cv_reports_recall_only_for_signs_trained_on_and_intervals_within_0_and_1(tmp_path):
    """cv --by recording where one recording holds only Hello: the fold trained on it never saw
    Thank_You or Yes, so it reports no recall for them; two folds give a t interval far wider than
    [0, 1], stored clipped."""
    from signtrain.training import crossval, settings as settings_lib

    only_hello = synth.write_mp_data(str(tmp_path / "hello_only" / "MP_Data"), actions=["Hello"], sequences=6, seed=3)
    full = synth.write_mp_data(str(tmp_path / "full" / "MP_Data"), actions=SIGNS, sequences=6, seed=4)
    _, summary = crossval.cross_validate(settings_lib.TrainSettings(data=[only_hello, full], epochs=1),
                                         by="recording", out=str(tmp_path / "cv"))
    low, high = summary["mean_test_accuracy_ci95"]
    assert 0.0 <= low <= summary["mean_test_accuracy"] <= high <= 1.0
    # Held out "full": trained on Hello only, tested on all three; held out "hello_only": tested on Hello only.
    assert list(summary["recall_per_class"]) == ["Hello"]


def test_folders_of_recordings_with_strays_are_read_as_recordings_or_named(two_people, tmp_path, capsys):
    people = tmp_path / "people"
    alice, bob = people / "alice" / "MP_Data", people / "bob" / "MP_Data"
    shutil.copytree(two_people[0], alice)
    shutil.copytree(two_people[1], bob)
    (people / "empty").mkdir()  # an empty stray folder is passed over
    (people / "bob" / "videos").mkdir()
    (people / "bob" / "videos" / "take1.mp4").write_bytes(b"\0")  # bob's other things beside his MP_Data
    assert recordings.expand([str(people)]) == [str(alice), str(bob)]
    code, output = run(capsys, "check", "--data", str(people / "bob"))  # one person's folder: the tree is named
    assert code != 0 and f"Use --data {str(bob)!r}" in output
    third = synth.write_mp_data(str(tmp_path / "synC" / "MP_Data"), actions=SIGNS, sequences=8, seed=9)
    assert recordings.expand([str(people), third]) == [str(alice), str(bob), third]
    code, output = run(capsys, "check", "--data", str(people), "--data", third)
    assert code == 0 and "recordings: 3" in output and "alice: 24 sequences" in output
    (people / "notes").mkdir()
    (people / "notes" / "todo.txt").write_text("re-record Yes")
    code, output = run(capsys, "check", "--data", str(people))
    assert code != 0 and f"{str(people / 'notes')!r} holds no MP_Data tree" in output and "move it out of" in output


def test_evaluate_scores_each_recording_of_a_folder_of_recordings(short_run, tmp_path, capsys):
    _, run_dir, data_dir = short_run
    run_copy = tmp_path / "run"
    shutil.copytree(run_dir, run_copy, ignore=shutil.ignore_patterns("evaluations"))
    people = tmp_path / "people"
    shutil.copytree(data_dir, people / "alice" / "MP_Data")
    shutil.copytree(data_dir, people / "bob" / "MP_Data")
    code, output = run(capsys, "evaluate", "--model", str(run_copy), "--data", str(people))
    assert code == 0 and "--alias" not in output
    assert sorted(os.listdir(run_copy / "evaluations")) == ["alice.json", "bob.json"]


def test_a_sequence_folder_named_with_a_superscript_digit_is_not_a_take(two_people, tmp_path):
    a = fresh_copy(two_people[0], tmp_path)
    shutil.copytree(os.path.join(a, "Yes", "0"), os.path.join(a, "Yes", "²"))
    dataset = data.load_dataset(a)
    assert len(dataset.y) == 24 and any("²" in note for note in dataset.notes)


def test_the_readmes_notebook_command_is_installed_by_the_set_up():
    import sys

    from conftest import REPO

    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    assert ".venv/bin/jupyter execute" in readme and "nbconvert" not in readme
    assert os.path.exists(os.path.join(os.path.dirname(sys.executable), "jupyter-execute"))


@pytest.mark.slow
def test_a_moved_recording_does_not_strand_a_run(two_people, tmp_path, capsys, monkeypatch):
    """args.yaml keeps absolute folders and what each recording held; --resume --data and export
    --data find moved recordings by name or in order, and refuse other takes under the same names."""
    import json

    import yaml

    work = tmp_path / "work"
    shutil.copytree(two_people[0], work / "rA" / "MP_Data")
    shutil.copytree(two_people[1], work / "rB" / "MP_Data")
    monkeypatch.chdir(work)
    assert cli.main(["train", "--data", "rA/MP_Data", "--data", "rB/MP_Data", "--epochs", "1", "--out", "run"]) == 0
    run_dir = work / "run"
    args = yaml.safe_load(open(run_dir / "args.yaml"))
    assert args["recordings"] == ["rA", "rB"] and args["data_folders"] == [str(work / "rA" / "MP_Data"),
                                                                           str(work / "rB" / "MP_Data")]
    os.remove(run_dir / "metrics.json")  # a run stopped while writing its files: resumable
    monkeypatch.chdir(tmp_path)  # another folder: the relative paths lead nowhere, the absolute ones do
    os.rename(work / "rB", work / "rB_moved")
    code, output = run(capsys, "train", "--resume", str(run_dir))
    assert code != 0 and "not found any more" in output and "--data NEW_FOLDER" in output and "rA, rB" in output
    replaced = tmp_path / "rerecorded"
    synth.write_mp_data(str(replaced / "MP_Data"), actions=SIGNS, sequences=8, seed=5)  # same names, other takes
    code, output = run(capsys, "train", "--resume", str(run_dir), "--data", str(work / "rA" / "MP_Data"), "--data",
                       str(replaced / "MP_Data"))
    assert code != 0 and "the takes of 'rB' are not those" in output
    code, output = run(capsys, "train", "--resume", str(run_dir), "--data", str(work / "rA" / "MP_Data"),
                       "--data", str(work / "rB_moved" / "MP_Data"))
    assert code == 0, output
    assert json.load(open(run_dir / "metrics.json"))["n_test"] == len(args["split"]["test"])
    code, output = run(capsys, "export", str(run_dir), "--format", "onnx", "--data", str(work / "rA" / "MP_Data"),
                       "--data", str(work / "rB_moved" / "MP_Data"))
    assert code == 0, output
    assert os.path.exists(run_dir / "action_model.onnx")


def test_recordings_are_relocated_by_name_never_mixed_up(two_people, tmp_path):
    """A folder of recordings that has grown since the run maps its recorded ones by name; the renamed
    ones pair up in the order given, never across a name that matched; names and folders must pair up."""
    people = tmp_path / "people"
    for name, source in (("alice", two_people[0]), ("bob", two_people[1]), ("aaron", two_people[0])):
        shutil.copytree(source, people / name / "MP_Data")
    by_name = recordings.relocate(["alice", "bob"], [str(people)])
    assert by_name == {"alice": str(people / "alice" / "MP_Data"), "bob": str(people / "bob" / "MP_Data")}
    os.rename(people / "bob", tmp_path / "bob_new")
    assert recordings.relocate(["alice", "bob"], [str(tmp_path / "bob_new" / "MP_Data"), str(people / "alice" / "MP_Data")]) \
        == {"alice": str(people / "alice" / "MP_Data"), "bob": str(tmp_path / "bob_new" / "MP_Data")}
    with pytest.raises(ValueError, match="give one --data per recording"):
        recordings.relocate(["alice", "bob"], [str(tmp_path / "bob_new" / "MP_Data")])
    renamed = recordings.relocate(["alice", "bob"], [str(people / "aaron" / "MP_Data"), str(tmp_path / "bob_new" / "MP_Data")])
    assert list(renamed) == ["alice", "bob"]  # none of the names found: in the order given
    with pytest.raises(ValueError, match="give one --data per recording"):
        recordings.load([str(people / "alice" / "MP_Data"), str(tmp_path / "bob_new" / "MP_Data")],
                        recording_names=["alice"])
