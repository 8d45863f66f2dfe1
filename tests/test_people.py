"""The options for a person the model never saw: --hand-dropout (training rows only), --keep last,
--recipe people (flags given beside it win)."""

import numpy as np
import pytest
import yaml

from signtrain import cli, config
from signtrain.data import dataset as data, synth
from signtrain.training import fitting, hand_dropout, settings
from signtrain.training.settings import TrainSettings

HANDS = slice(config.block_slice("left_hand").start, config.NUM_FEATURES)


def frames(rows, seed=0):
    """Frames with no zero anywhere: every zero after drop_hands was put there by it."""
    return np.random.default_rng(seed).uniform(0.1, 1.0, (rows, config.SEQUENCE_LENGTH, config.NUM_FEATURES)).astype(
        np.float32)


def dropped(batch):
    """(rows, steps, 2): where each hand's 63 values are all zero."""
    return np.stack([np.all(batch[:, :, config.block_slice(hand)] == 0, axis=2) for hand in hand_dropout.HANDS], axis=2)


def test_drop_hands_zeroes_one_span_of_a_whole_hand_and_nothing_else():
    import tensorflow as tf

    x = frames(400)
    out = hand_dropout.drop_hands(tf.constant(x), tf.constant([3, 4])).numpy()
    assert np.array_equal(out[:, :, :HANDS.start], x[:, :, :HANDS.start])  # pose and face untouched
    hands = out[:, :, HANDS]
    assert np.all((hands == 0) | (hands == x[:, :, HANDS]))  # a value is kept or zeroed, never changed
    spans = dropped(out)
    partial = (out[:, :, HANDS] == 0) & ~np.repeat(spans, 63, axis=2)
    assert not partial.any()  # a hand is lost whole, as MediaPipe loses it
    for row in range(len(x)):
        for hand in range(2):
            steps = np.flatnonzero(spans[row, :, hand])
            assert len(steps) == 0 or np.array_equal(steps, np.arange(steps[0], steps[-1] + 1))  # one span
    # Each hand of each sequence loses a span with probability RATE: 800 draws, within 4 sd.
    hit = spans.any(axis=1).mean()
    assert abs(hit - hand_dropout.RATE) < 4 * np.sqrt(hand_dropout.RATE * (1 - hand_dropout.RATE) / 800)
    lengths = spans.sum(axis=1)[spans.any(axis=1)]
    assert lengths.min() == 1 and lengths.max() == config.SEQUENCE_LENGTH  # spans from 1 frame to all of them


def test_hand_dropout_touches_only_the_training_batches_and_redraws_every_epoch():
    from tensorflow import keras

    x, y = frames(60), data.one_hot(np.arange(60) % 3, 3)
    # One batch order for all epochs (reshuffle off): a mask that changes is a new draw.
    run = TrainSettings(data="unused", hand_dropout=True, fast=True, reshuffle=False)
    keras.utils.set_random_seed(5)
    every_row = data.Split.of(np.arange(len(x)), [])
    plan = fitting.plan_fit(run, x, y, every_row, seed=5)
    split = len(every_row.train)
    epochs = [np.concatenate([batch[0].numpy() for batch in plan.inputs["x"]]) for _ in range(2)]
    assert all(dropped(epoch).any() for epoch in epochs)
    assert not np.array_equal(dropped(epochs[0]), dropped(epochs[1]))  # a new draw every epoch
    validation = np.concatenate([batch[0].numpy() for batch in plan.inputs["validation_data"]])
    np.testing.assert_array_equal(validation, x[split:])  # validation rows as recorded
    statistics_x, rows = plan.statistics
    np.testing.assert_array_equal(statistics_x[rows], x[:split])  # exact BatchNorm statistics: clean rows
    # The same seed gives the same draws again (a run is reproducible).
    keras.utils.set_random_seed(5)
    again = fitting.plan_fit(run, x, y, every_row, seed=5)
    np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in again.inputs["x"]]), epochs[0])
    # Off (the default): no training value is ever zeroed.
    plain = fitting.plan_fit(TrainSettings(data="unused", fast=True, reshuffle=True), x, y, every_row, seed=5)
    assert not np.any(np.concatenate([b[0].numpy() for b in plain.inputs["x"]]) == 0)


def test_hand_dropout_without_the_fast_path_still_goes_through_the_pipeline():
    x, y = frames(30), data.one_hot(np.arange(30) % 3, 3)
    plan = fitting.plan_fit(TrainSettings(data="unused", hand_dropout=True, fast=False, reshuffle=False,
                                          precise_bn=False), x, y, data.Split.of(np.arange(30), []), seed=1)
    assert plan.path == "pipelines" and dropped(np.concatenate([b[0].numpy() for b in plan.inputs["x"]])).any()


def test_hand_dropout_is_refused_for_another_layout_naming_the_flag():
    with pytest.raises(ValueError, match="--hand-dropout needs the 1662-value layout.*258"):
        hand_dropout.check_layout(258)


def test_recipe_people_sets_its_options_and_flags_given_beside_it_win():
    def built(*argv):
        argv = ["train", "--data", "a", *argv]
        args = cli.build_parser().parse_args(argv)
        return settings.from_args(args, args.data, cli.given_settings(argv))

    people = built("--recipe", "people")
    assert (people.features, people.hand_dropout, people.keep, people.epochs, people.ensemble) == (
        "relative", True, "last", 60, 3)
    assert people.recipe == "people" and people.patience == config.DEFAULT_PATIENCE
    # Given beside it, even at the spec's default value, a flag wins.
    assert built("--recipe", "people", "--epochs", "200").epochs == 200
    assert built("--recipe", "people", "--keep", "best").keep == "best"
    assert built("--recipe", "people", "--features=raw").features == "raw"
    assert built("--recipe", "people", "--no-hand-dropout").hand_dropout is False
    assert built("--recipe", "people", "--epo", "7").epochs == 7  # argparse's abbreviation is a given flag too
    assert built() == TrainSettings(data="a")  # without it: the spec's defaults, exactly
    assert "--features relative --hand-dropout --keep last --epochs 60 --ensemble 3" == config.describe_recipe("people")
    cv_args = cli.build_parser().parse_args(["cv", "--data", "a", "--data", "b", "--recipe", "people"])
    assert settings.from_args(cv_args, cv_args.data).ensemble == 1  # cv has no --ensemble: not set behind its back


def test_keep_last_trains_every_epoch_and_ships_the_last(tmp_path):
    data_dir = synth.write_mp_data(str(tmp_path / "MP_Data"), actions=["Hello", "Yes", "No"], sequences=8, seed=3)
    out = tmp_path / "run"
    # patience 0 would stop after epoch 2 with --keep best; --keep last runs all 4.
    assert cli.main(["train", "--data", data_dir, "--epochs", "4", "--patience", "0", "--keep", "last",
                     "--hand-dropout", "--out", str(out)]) == 0
    metrics = yaml.safe_load(open(out / "metrics.json"))
    assert metrics["epochs_run"] == 4 and metrics["best_epoch"] == 4
    assert metrics["keep"] == "last" and metrics["hand_dropout"] is True
    args = yaml.safe_load(open(out / "args.yaml"))
    assert args["keep"] == "last" and args["hand_dropout"] is True and args["recipe"] == "spec"
    # The saved model is the spec's, nothing of the dropout inside it.
    from signtrain.model import network as model_lib

    shipped = model_lib.load_model(str(out / "action_model.h5"))
    assert [type(layer).__name__ for layer in shipped.layers] == [
        type(layer).__name__ for layer in model_lib.build_model(3).layers]


def test_the_profile_measures_missing_hands_size_place_and_pace():
    from signtrain.data import person

    X = synth.synth_arrays(["Hello", "Yes"], sequences=6, seed=2)[0]
    trained = person.profile(X)
    assert person.differences(person.profile(X), trained) == []  # the same recording: nothing to say
    lost = X.copy()
    lost[:, :18, HANDS] = 0  # both hands gone in 18 of 30 frames
    scored = person.profile(lost)
    late = np.mean(np.all(X[:, 18:, HANDS] == 0, axis=-1))  # frames 18-29 without either hand before
    assert scored.no_hand == pytest.approx(0.6 + 0.4 * late) and scored.no_hand > trained.no_hand + 0.4
    lines = person.differences(scored, trained)
    assert any("hands (both) missing in" in line and "--hand-dropout" in line for line in lines), lines
    closer = X.copy()
    pose = closer[..., config.block_slice("pose")].reshape(*X.shape[:2], 33, 4)
    pose[..., :2] = (pose[..., :2] - 0.5) * 2 + 0.5  # the body twice as large around the image centre
    closer[..., config.block_slice("pose")] = pose.reshape(*X.shape[:2], -1)
    assert any("2.0x as wide" in line for line in person.differences(person.profile(closer), trained))
    assert not any("hands move" in line for line in lines)  # a lost hand is not a still one: no pace line
    assert scored.moving == pytest.approx(trained.moving, abs=0.1)
    assert person.Profile.from_json(scored.to_json()) == scored
    assert person.Profile.from_json({"frames": 3}) is None and person.Profile.from_json(None) is None
    assert person.profile(X[..., :258]) is None  # another layout: no profile, no comparison
    nobody = person.profile(np.zeros_like(X[:2]))  # no pose, no hand anywhere: shares, no size, no pace
    assert nobody.no_pose == 1 and np.isnan(nobody.shoulder_width) and np.isnan(nobody.moving)
    assert any("body (pose) missing in 100%" in line for line in person.differences(nobody, trained))
    assert person.differences(trained, nobody) == []  # nothing to compare against: nothing said, no error


def test_evaluate_says_why_a_person_fails(short_run, tmp_path, capsys):
    _, run_dir, data_dir = short_run
    import json
    import shutil

    stranger = tmp_path / "stranger"
    shutil.copytree(data_dir, stranger, ignore=shutil.ignore_patterns(".signtrain_cache"))
    for frame in stranger.glob("*/*/*.npy"):
        if int(frame.stem) < 20:  # hands lost in two thirds of every sequence
            values = np.load(frame)
            values[HANDS] = 0
            np.save(frame, values)
    assert json.load(open(f"{run_dir}/metrics.json"))["data_profile"]["no_hand"] < 0.5
    run_copy = shutil.copytree(run_dir, tmp_path / "run")  # evaluate writes evaluations/: never into the shared run
    assert cli.main(["evaluate", "--model", str(run_copy), "--data", str(stranger)]) == 0
    out = capsys.readouterr().out
    assert "why it may fail: the hands (both) missing in" in out and "Fix: light the hands" in out


def test_a_loss_that_turns_nan_stops_the_run_keeps_no_model_and_names_the_rows(tmp_path, capsys, monkeypatch):
    """The frames are finite and within the bound, so a NaN is forced into the loss (what a blow-up
    does) and the run must not ship the weights that follow."""
    from tensorflow import keras

    from signtrain.model import network as model_lib

    data_dir = synth.write_mp_data(str(tmp_path / "MP_Data"), actions=["Hello", "Yes"], sequences=6, seed=3)

    def nan_loss(y_true, y_pred):
        return keras.losses.categorical_crossentropy(y_true, y_pred) * float("nan")

    monkeypatch.setattr(model_lib, "compile_model", lambda net: net.compile(
        optimizer="adam", loss=nan_loss, metrics=["categorical_accuracy"]) or net)
    out = tmp_path / "run"
    assert cli.main(["train", "--data", data_dir, "--epochs", "3", "--no-fast", "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "NAN_LOSS: the training loss became nan at step 1" in error and f"{out} was removed" in error
    assert "The sequences with the largest values were" in error and ("Hello/" in error or "Yes/" in error)
    assert not out.exists()  # nothing that could be loaded as a model


def test_values_no_camera_gives_skip_their_sequence_with_the_reason(tmp_path):
    data_dir = synth.write_mp_data(str(tmp_path / "MP_Data"), actions=["Hello", "Yes"], sequences=3, seed=3)
    frame = tmp_path / "MP_Data" / "Yes" / "1" / "4.npy"
    values = np.load(frame)
    values[7] = 1e30  # finite, even in float32
    np.save(frame, values)
    dataset = data.load_dataset(data_dir)
    [skipped] = dataset.skipped
    assert skipped["sequence"] == "1" and "frame 4.npy has a value of 1e+30, far beyond what MediaPipe" in skipped["reason"]
    assert np.abs(dataset.X).max() <= config.MAX_ABS_VALUE


def test_repeated_flags_are_read_whole_or_refused(tmp_path, capsys):
    """check reads every --data recording (as train does); a one-value flag given twice is refused."""
    a = synth.write_mp_data(str(tmp_path / "a" / "MP_Data"), actions=["Hello", "Yes"], sequences=4, seed=1)
    b = synth.write_mp_data(str(tmp_path / "b" / "MP_Data"), actions=["Hello", "Yes"], sequences=5, seed=2)
    assert cli.main(["check", "--data", a, "--data", b, "--json"]) == 0
    report = yaml.safe_load(capsys.readouterr().out)
    assert [sum(row["sequences"].values()) for row in report["recordings"]] == [8, 10]
    assert cli.main(["check", "--data", str(tmp_path)]) == 0  # a folder of recordings, as train takes it
    assert "recordings: 2" in capsys.readouterr().out
    for argv in (["train", "--data", a, "--test-data", a, "--test-data", b], ["train", "--data", a, "--epochs", "3",
                                                                              "--epochs", "4"]):
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args(argv)
        assert "was given twice" in capsys.readouterr().err
