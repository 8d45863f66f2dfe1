"""Hostile input, round 2 (issue 16), family 3: damaged model folders, generated.

action_model.h5, actions.npy and metrics.json damaged: evaluate, predict and export end with a
non-zero code and a message that names the file and the fix, and change no file of the run.
"""

import json
import os
import shutil
import tempfile

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from signtrain import cli, config
from families import JSON_VALUES, family_settings, link_or_copy, unlinked, with_examples
from test_hostile import run, snapshot


# What each command of a run folder reads: the damage to a file is tried on those commands.
READERS = {config.MODEL_FILE: ("evaluate", "predict", "export"), config.ACTIONS_FILE: ("evaluate", "predict"),
           config.METRICS_FILE: ("export",)}
# The ways on that the messages give, one of which each message names.
FIXES = ("copy the run's file again", "train again", "use the actions.npy the run wrote",
         "use the one the run wrote", "Put the run's own actions.npy", "takes a finished run folder",
         "train the run again", "np.save(path, np.array(")
_names = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)

MODEL_FOLDER_DAMAGE = {  # file -> damage -> its values
    config.MODEL_FILE: {
        "truncate": st.floats(0, 1, exclude_max=True),
        "random_bytes": st.tuples(st.sampled_from([b"", b"\x89HDF\r\n\x1a\n"]), st.binary(max_size=3000)),
        "plain_hdf5": st.tuples(  # datasets {name: dtype}, and a model_config attribute (None: none)
            st.dictionaries(st.text("abcdefgh_/", min_size=1, max_size=8).filter(lambda n: n.strip("/")),
                            st.sampled_from(["f4", "i8", "S3", "f8"]), max_size=4),
            st.one_of(st.none(), JSON_VALUES.map(json.dumps), st.just("{not json"))),
        "without_weights": st.sampled_from(["model_weights", "model_config"]),
        "delete": st.none(),
    },
    config.ACTIONS_FILE: {
        "object_array": st.booleans(),
        "wrong_length": st.integers(0, 14).filter(lambda n: n != 10),
        "two_dimensional": st.sampled_from([(2, 5), (10, 1), (1, 10)]),
        "odd_unicode": st.lists(_names, min_size=10, max_size=10),
        "odd_unicode_wrong_length": st.lists(_names, max_size=14).filter(lambda names: len(names) != 10),
        "bytes_names": st.none(),
        "empty": st.sampled_from(["float64", "<U1", "S1"]),
        "not_npy": st.one_of(st.binary(max_size=200), st.just(b"Hello\nYes\nNo\n")),
        "numbers": st.sampled_from(["int64", "float64", "bool", "complex128"]),
        "delete": st.none(),
    },
    config.METRICS_FILE: {
        "invalid_json": st.one_of(st.floats(0, 1, exclude_max=True), st.text(max_size=30)),
        "not_a_dict": JSON_VALUES.filter(lambda value: not isinstance(value, dict)),
        "missing_key": st.integers(0, 100),
        "unread_key_any_value": st.tuples(st.integers(0, 100), JSON_VALUES),  # a key export does not read
        "wrong_type": st.tuples(st.sampled_from(["test_sequences", "exports"]), JSON_VALUES),  # the two it does
        "bad_test_sequence": st.one_of(JSON_VALUES, st.tuples(st.text(max_size=6), st.text(max_size=4)).map(list)),
        "delete": st.none(),
    },
}


def _cases(name, kinds=None, commands=None, where=None):
    """(file, (damage, value), command) cases: a damage of `kinds` (default all) to the file, value
    restricted by where(kind, value), and one of the commands that read the file."""
    kinds = sorted(kinds or MODEL_FOLDER_DAMAGE[name])
    damage = st.sampled_from(kinds).flatmap(lambda kind: MODEL_FOLDER_DAMAGE[name][kind].filter(
        lambda value: where is None or where(kind, value)).map(lambda value: (kind, value)))
    return st.tuples(st.just(name), damage, st.sampled_from(commands or READERS[name]))


def _names_of_another_length(kind, value):
    """An actions.npy of sign names, but not as many as the model has outputs."""
    return kind in ("wrong_length", "odd_unicode_wrong_length") or (kind == "empty" and value != "float64")


def _damage_run_file(run_dir, name, kind, value, actions):
    """Damage run_dir/name. Returns the sign names of a still valid actions.npy (None otherwise)."""
    path = os.path.join(run_dir, name)
    original = unlinked(path)
    if kind == "delete":
        return None
    if name == config.MODEL_FILE:
        import h5py

        if kind == "truncate":
            open(path, "wb").write(original[:int(value * len(original))])
        elif kind == "random_bytes":
            open(path, "wb").write(value[0] + value[1])
        elif kind == "plain_hdf5":
            datasets, model_config = value
            with h5py.File(path, "w") as handle:
                for index, (dataset, dtype) in enumerate(datasets.items()):
                    handle.create_dataset(dataset.strip("/") + str(index), data=np.zeros(index + 2, dtype=dtype))
                if model_config is not None:
                    handle.attrs["model_config"] = model_config
        elif kind == "without_weights":  # the run's own file, one of its two parts removed
            open(path, "wb").write(original)
            with h5py.File(path, "r+") as handle:
                if value in handle:
                    del handle[value]
                else:
                    del handle.attrs[value]
        return None
    if name == config.ACTIONS_FILE:
        if kind == "object_array":
            array = np.empty(len(actions), dtype=object)
            array[:] = [{"name": action} for action in actions] if value else list(actions)
            np.save(path, array, allow_pickle=True)
        elif kind == "wrong_length":
            np.save(path, np.array((actions * 2)[:value], dtype=str))
        elif kind == "two_dimensional":
            np.save(path, np.array(actions).reshape(value) if np.prod(value) == len(actions) else np.array([actions]))
        elif kind in ("odd_unicode", "odd_unicode_wrong_length"):
            np.save(path, np.array(value, dtype=str))
            names = [str(action) for action in np.load(path)]  # numpy drops trailing NULs: what the file says
            return names if len(names) == len(actions) else None
        elif kind == "bytes_names":  # np.save(np.array(names, dtype="S")), as Python 2 era scripts wrote it
            np.save(path, np.array([action.encode() for action in actions]))
            return list(actions)
        elif kind == "empty":
            np.save(path, np.array([], dtype=value))
        elif kind == "not_npy":
            open(path, "wb").write(value)
        elif kind == "numbers":
            np.save(path, np.arange(len(actions)).astype(value))
        return None
    metrics = json.loads(original)
    if kind == "invalid_json":
        text = original.decode()
        open(path, "w").write(text[:int(value * len(text))] if isinstance(value, float) else "{" + value)
        return None
    if kind == "not_a_dict":
        metrics = value
    elif kind == "missing_key":
        metrics.pop(sorted(metrics)[value % len(metrics)])
    elif kind == "unread_key_any_value":
        unread = sorted(set(metrics) - {"test_sequences", "exports"})
        metrics[unread[value[0] % len(unread)]] = value[1]
    elif kind == "wrong_type":
        metrics[value[0]] = value[1]
    elif kind == "bad_test_sequence":
        metrics["test_sequences"] = metrics["test_sequences"][:1] + [value]
    open(path, "w").write(json.dumps(metrics))
    return None


@pytest.fixture(scope="module")
def model_run(short_run):
    """The short run, its data, one of its sequences, its signs, and what `signtrain predict` says
    for that sequence: [(index of the sign, share as printed)] of the top 3."""
    import contextlib
    import io

    _, run_dir, data_dir = short_run
    sequence = os.path.join(data_dir, "Hello", "0")
    actions = [str(action) for action in np.load(os.path.join(run_dir, config.ACTIONS_FILE))]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert cli.main(_command("predict", run_dir, data_dir, sequence)) == 0
    line = next(line for line in printed.getvalue().splitlines() if line.startswith("0: "))
    predicted = [(actions.index(item.rsplit(" ", 1)[0]), item.rsplit(" ", 1)[1]) for item in line[3:].split(", ")]
    assert len(predicted) == 3
    return run_dir, data_dir, sequence, actions, predicted


def _command(name, run_dir, data_dir, sequence):
    return {"evaluate": ["evaluate", "--model", run_dir, "--data", data_dir],
            "predict": ["predict", "--model", run_dir, "--data", sequence],
            "export": ["export", run_dir, "--format", "savedmodel"]}[name]


def _model_folder_case(model_run, tmp_path, capsys, case):
    """The family's property for one (file, (damage, value), command)."""
    run_dir, data_dir, sequence, actions, predicted = model_run
    name, (kind, value), command = case
    event(f"{name}: {kind} -> {command}")
    copy = os.path.join(tempfile.mkdtemp(dir=tmp_path), "exp")
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("evaluations"), copy_function=link_or_copy)
    names = _damage_run_file(copy, name, kind, value, actions)
    before = snapshot(copy)
    code, output = run(capsys, *_command(command, copy, data_dir, sequence))
    assert isinstance(code, int)  # run() raises what cli.main did not turn into a message
    after = snapshot(copy)
    if names is not None:  # a valid actions.npy of other names: predict shows them, evaluate matches by them
        event("valid sign names")
        if command == "predict":
            assert code == 0, output
            assert "0: " + ", ".join(f"{names[index]} {share}" for index, share in predicted) in output.split("\n")
        else:
            assert code == 0 or (code == 2 and f"matches a sign of the model {names}" in output), output
        assert {path: digest for path, digest in after.items() if not path.startswith("evaluations/")} == before
        return
    if code == 0:  # only a metrics.json still holding what export needs: it records the export in it
        assert name == config.METRICS_FILE and command == "export", output
        event("export went on")
        metrics = json.load(open(os.path.join(copy, name)))
        assert isinstance(metrics.get("exports"), dict) and "savedmodel" in metrics["exports"]
        assert {path: digest for path, digest in after.items() if path != name} == \
            {path: digest for path, digest in before.items() if path != name}
        return
    assert code == 2, output
    assert name in output, output  # the damaged file, by name
    assert any(fix in output for fix in FIXES), output
    assert "allow_pickle=True" not in output
    assert after == before  # nothing changed, nothing added


# bytes_names: test_bytes_sign_names_... below
ACTIONS_KINDS_THAT_WORK = sorted(set(MODEL_FOLDER_DAMAGE[config.ACTIONS_FILE]) - {"bytes_names"})
MODEL_FOLDER_EXAMPLES = [
    (config.MODEL_FILE, ("truncate", 0.5), "evaluate"), (config.MODEL_FILE, ("random_bytes", (b"", b"x")), "predict"),
    (config.MODEL_FILE, ("plain_hdf5", ({"numbers": "f4"}, None)), "export"),
    (config.MODEL_FILE, ("plain_hdf5", ({"a": "i8"}, '{"class_name": "Sequential"}')), "predict"),
    (config.MODEL_FILE, ("without_weights", "model_weights"), "evaluate"),
    (config.MODEL_FILE, ("delete", None), "export"), (config.MODEL_FILE, ("delete", None), "predict"),
    (config.ACTIONS_FILE, ("object_array", True), "predict"), (config.ACTIONS_FILE, ("wrong_length", 3), "evaluate"),
    (config.ACTIONS_FILE, ("two_dimensional", (2, 5)), "predict"),
    (config.ACTIONS_FILE, ("odd_unicode", ["\u200b", "", " ", "Ｈｅｌｌｏ", "a\u0301", "\U0001f44b", "\u202eYes",
                                          "x" * 12, "Hello\u200b", "\n"]), "predict"),
    (config.ACTIONS_FILE, ("not_npy", b"Hello\nYes\n"), "evaluate"), (config.ACTIONS_FILE, ("delete", None), "predict"),
    (config.ACTIONS_FILE, ("numbers", "int64"), "evaluate"),
    (config.METRICS_FILE, ("not_a_dict", [1, 2]), "export"), (config.METRICS_FILE, ("missing_key", 0), "export"),
    (config.METRICS_FILE, ("delete", None), "export"),
]


@family_settings(15)
@with_examples([dict(case=case) for case in MODEL_FOLDER_EXAMPLES])
@given(case=st.one_of(
    _cases(config.MODEL_FILE),
    _cases(config.ACTIONS_FILE, commands=["evaluate"], kinds=ACTIONS_KINDS_THAT_WORK),
    _cases(config.ACTIONS_FILE, commands=["predict"],
           kinds=set(ACTIONS_KINDS_THAT_WORK) - {"wrong_length", "odd_unicode_wrong_length"},
           where=lambda kind, value: not _names_of_another_length(kind, value)),
    _cases(config.METRICS_FILE, kinds=["not_a_dict", "missing_key", "delete", "unread_key_any_value"]),
))
def test_a_damaged_model_folder_is_refused_naming_the_file_and_the_fix(model_run, tmp_path, capsys, case):
    _model_folder_case(model_run, tmp_path, capsys, case)


@family_settings(6)
@with_examples([dict(case=(config.ACTIONS_FILE, ("wrong_length", 3), "predict"))])
@given(case=_cases(config.ACTIONS_FILE, kinds=["wrong_length", "odd_unicode_wrong_length", "empty"],
                   commands=["predict"], where=_names_of_another_length))
def test_predict_names_the_way_on_for_an_actions_file_of_another_length(model_run, tmp_path, capsys, case):
    _model_folder_case(model_run, tmp_path, capsys, case)


@family_settings(12)
@with_examples([dict(case=(config.METRICS_FILE, ("invalid_json", 0.0), "export")),
                 dict(case=(config.METRICS_FILE, ("wrong_type", ("test_sequences", [1.5])), "export")),
                 dict(case=(config.METRICS_FILE, ("bad_test_sequence", ["Hello", "0", "x"]), "export")),
                 dict(case=(config.METRICS_FILE, ("bad_test_sequence", ["Nope", "1"]), "export")),
                 dict(case=(config.METRICS_FILE, ("wrong_type", ("exports", [[], []])), "export"))])
@given(case=_cases(config.METRICS_FILE, kinds=["invalid_json", "wrong_type", "bad_test_sequence"]))
def test_export_names_metrics_json_when_it_is_damaged(model_run, tmp_path, capsys, case):
    _model_folder_case(model_run, tmp_path, capsys, case)


@family_settings(1)
@with_examples([dict(case=(config.ACTIONS_FILE, ("bytes_names", None), command)) for command in ("predict", "evaluate")])
@given(case=_cases(config.ACTIONS_FILE, kinds=["bytes_names"]))
def test_bytes_sign_names_are_read_as_the_names(model_run, tmp_path, capsys, case):
    _model_folder_case(model_run, tmp_path, capsys, case)
