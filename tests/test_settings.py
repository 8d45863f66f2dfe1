"""Every training flag is declared once (signtrain.training.settings): argparse, the checks and TrainSettings
come from that declaration."""

import dataclasses

import pytest

from signtrain import cli, config
from signtrain.training import settings
from signtrain.training.settings import TrainSettings


def parse(*argv):
    return cli.build_parser().parse_args(list(argv))


def test_the_command_line_builds_the_settings_it_names():
    args = parse("train", "--data", "a", "--data", "b", "--epochs", "5", "--patience", "0", "--no-fast",
                 "--no-precise-bn", "--alias", "thanks=Thank_You", "--features", "relative", "--export", "onnx",
                 "--actions", "Hello, Yes")
    built = settings.from_args(args, args.data)
    assert built.data == ["a", "b"] and built.epochs == 5 and built.patience == 0
    assert built.fast is False and built.precise_bn is False and built.features == "relative"
    assert [tuple(pair) for pair in built.aliases] == [("thanks", "Thank_You")] and built.export == ["onnx"]
    assert built.actions == ["Hello", "Yes"]
    # Nothing given: exactly the dataclass defaults (the spec's), one --data recorded as one folder.
    plain = settings.from_args(parse("train", "--data", "a"), ["a"])
    assert plain == TrainSettings(data="a")
    assert (plain.epochs, plain.patience, plain.batch_size, plain.seed, plain.monitor) == (
        config.DEFAULT_EPOCHS, config.DEFAULT_PATIENCE, config.DEFAULT_BATCH_SIZE, config.DEFAULT_SEED, config.MONITOR)


def test_each_command_takes_the_flags_declared_for_it(capsys):
    declared = {field.name: field.metadata["flag"]["commands"] for field in settings.flags()}
    for command in ("train", "cv", "demo", "check", "evaluate"):
        given = set(vars(parse(command, "--data", "x", *(["--model", "r"] if command == "evaluate" else []))
                         if command != "demo" else parse("demo")))
        assert {name for name, commands in declared.items() if command in commands} <= given, command
        own = {"check": {"stream"}}.get(command, set())  # check's --stream packs the cache: its own flag
        assert not {name for name, commands in declared.items() if command not in commands} & given - own, command
    with pytest.raises(SystemExit):
        parse("train", "--help")
    text = capsys.readouterr().out
    for field in settings.flags():  # every train flag, spelled as declared, with its default filled in
        if "train" in field.metadata["flag"]["commands"]:
            assert settings.flag_name(field.name) in text
    assert "{default}" not in text and "(default 200)" in text


@pytest.mark.parametrize("change, message", [
    ({"epochs": 0}, "--epochs must be a whole number >= 1, got 0"),
    ({"patience": -1}, "--patience must be a whole number >= 0, got -1"),
    ({"batch_size": 2.5}, "--batch-size must be a whole number >= 1, got 2.5"),
    ({"seed": 2**32}, "--seed must be a whole number from 0 to 4294967295, got 4294967296"),
    ({"epochs": True}, "--epochs must be a whole number >= 1, got True"),
    ({"monitor": "accuracy"}, "--monitor 'accuracy' is not one of val_categorical_accuracy, val_loss"),
    ({"features": "pixels"}, "--features 'pixels' is not one of raw, relative"),
    ({"strategy": "tpu"}, "--strategy 'tpu' is not one of none, mirrored, multiworker"),
    ({"augment": True, "stream": True}, "cannot be combined with --stream"),
])
def test_settings_made_in_python_are_checked_against_the_same_declarations(change, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        dataclasses.replace(TrainSettings(data="x"), **change).validate()
