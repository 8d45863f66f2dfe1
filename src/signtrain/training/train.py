"""One training run, start to finish, as labelled phases (train() below): prepare (settings, data,
split, model, run folder), plan the fit, fit, finish (reload the best epoch, evaluate on the test
split only, write every file of the run folder). Each phase has its module in this package:
settings, runfolder, fitting, finish.
"""

import dataclasses
import logging
import os
import platform
import re
import shutil
import sys
import time

import numpy as np

from signtrain import __version__, config, files
from signtrain.data import check, dataset as data, recordings
from signtrain.report import diagnose, evaluate
from signtrain.training import distribute, fitting, runfolder
from signtrain.training.finish import finish, print_summary
from signtrain.training.resume import recorded_names, settings_from_run, split_rows
from signtrain.training.settings import TrainSettings, check_options, resolved, sequence_name, write_args

__all__ = ["TrainSettings", "TrainingInterrupted", "load_data", "settings_from_run", "train", "versions"]


class TrainingInterrupted(Exception):
    """Ctrl-C during fit: what was learned is saved and the run can be resumed."""


@dataclasses.dataclass
class Prepared:
    """A run ready to train: everything that can refuse the input has done so."""
    settings: TrainSettings  # resolved: the automatic choices made
    dataset: data.Dataset
    data_check: dict  # signtrain.data.check's summary of the data
    split: data.Split  # train, validation (the last 15% of the training rows), test: decided once
    strategy: object  # the tf.distribute strategy, or None
    net: object  # the compiled spec model, weights made after the seed
    recording: object  # --test-data, loaded and matched to the actions, or None
    run_dir: str  # claimed by this run (runfolder.CLAIM_FILE) until it ends
    created: bool  # this run made run_dir (removed again if nothing is kept)
    resume_dir: str = None
    versions: dict = None
    member: bool = False  # one member's fit of an --ensemble run (fit_members), in run_dir/members/seed<S>

    def path(self, name):
        return os.path.join(self.run_dir, name)


def versions():
    import keras
    import sklearn
    import tensorflow as tf

    return {"signtrain": __version__, "python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__, "scikit-learn": sklearn.__version__,
            "platform": platform.platform()}


class _HideHdf5LegacyNotice(logging.Filter):
    """Keras 3 logs "HDF5 is legacy" at every checkpoint; .h5 is what the live app loads, on purpose."""

    def filter(self, record):
        return "saving your model as an HDF5 file" not in record.getMessage()


logging.getLogger("absl").addFilter(_HideHdf5LegacyNotice())


def default_verbose():
    # Keras' bar redraws one line; piped into a file or CI log that is noise, so one line per epoch.
    return 1 if sys.stdout.isatty() else 2


def load_data(settings, recording_names=None):
    """The dataset of --data: one MP_Data folder (in memory or --stream), or several recordings
    (recording_names: as a resumed run recorded them, where they moved)."""
    folders = recordings.expand(settings.data)
    if not settings.stream:
        return recordings.load(folders, settings.actions, settings.aliases or (), settings.any_layout,
                               recording_names=recording_names)
    if len(folders) > 1:
        raise ValueError(f"--stream reads one --data folder, {len(folders)} recordings were given; train them in "
                         f"memory (drop --stream) or put them in one MP_Data folder")
    return data.load_dataset(folders[0], settings.actions, any_layout=settings.any_layout, stream=True)


def checked_data(settings, recording_names=None):
    """The dataset and signtrain.data.check's summary of it, printed; refused when the check finds errors."""
    dataset = load_data(settings, recording_names)
    data_check = check.summarize(dataset)
    if dataset.recordings:
        print(recordings.format_summary(dataset))
    print(check.format_report(data_check))
    if check.errors(data_check):
        raise ValueError("; ".join(f"{p['message']} (fix: {p['fix']})" for p in check.errors(data_check)))
    return dataset, data_check


def prepare(settings, resume_dir=None):
    """Settings, data, split, model and the run folder. Everything that can refuse the input does so
    before the run folder exists."""
    settings = resolved(settings)
    if settings.recipe != "spec":
        print(f"--recipe {settings.recipe}: {config.describe_recipe(settings.recipe)} (flags given beside it win); "
              f"this run: --features {settings.features}{' --hand-dropout' if settings.hand_dropout else ''} "
              f"--keep {settings.keep} --epochs {settings.epochs} --ensemble {settings.ensemble}")
    dataset, data_check = checked_data(settings, recorded_names(resume_dir) if resume_dir else None)
    if len(dataset.recordings or ()) > 1 and settings.recipe == "spec":
        print(f"note: {config.PEOPLE_RECIPE_GAIN}")
    # A resumed run keeps the rows it started with, whatever was added since: no test row is ever trained on.
    split = split_rows(dataset, settings.seed, resume_dir)
    check_options(settings, dataset)
    from tensorflow import keras

    strategy = distribute.make_strategy(settings.strategy)
    if strategy:
        print(f"tf.distribute {settings.strategy}: {strategy.num_replicas_in_sync} replicas, "
              f"{strategy.num_replicas_in_sync * settings.batch_size} sequences per step")
    keras.utils.set_random_seed(settings.seed)  # before the weights are made
    net = fitting.new_model(settings, len(dataset.actions), dataset, strategy)
    recording = (recordings.load_recording(dataset.actions, settings.test_data, settings.aliases or (),
                                         settings.any_layout, flag="--test-data") if settings.test_data else None)
    if not resume_dir:
        for folder in recordings.expand(settings.data):
            runfolder.check_outside_data(settings.out, folder)
    created = settings.out is None or not os.path.exists(settings.out)  # to remove if nothing is kept
    run_dir = runfolder.open_run(settings.out, resume_dir=resume_dir)
    return Prepared(settings, dataset, data_check, split, strategy, net, recording, run_dir, created,
                    resume_dir, versions())


def plan(prepared):
    """The FitPlan of the training rows (read batch by batch from the memory map with --stream)."""
    dataset, settings, split = prepared.dataset, prepared.settings, prepared.split
    print(f"{len(dataset.y)} sequences of {len(dataset.actions)} actions, frames of {dataset.num_features} values; "
          f"train {len(split.training)} (of which {len(split.validation)} validation), test {len(split.test)}")
    return fitting.plan_fit(settings, dataset.X, data.one_hot(dataset.y, len(dataset.actions)), split, settings.seed,
                            prepared.net.distribute_strategy.num_replicas_in_sync, streamed=settings.stream)


def fit_run(prepared, net, fit_plan, resumed):
    """fitting.fit with the spec's callbacks; Ctrl-C, a full disk and out-of-memory end in a clear
    message and a run folder that is resumable or gone. Returns (history, seconds)."""
    import tensorflow as tf
    from tensorflow import keras

    settings, run_dir, path = prepared.settings, prepared.run_dir, prepared.path
    started = time.perf_counter()
    try:
        history = fitting.fit(
            net, fit_plan, callbacks=fitting.callbacks(keras, path, settings, resumed),
            # A run whose early stopping had already ended trains no further epoch when resumed.
            epochs=(resumed.epochs_done if resumed and settings.keep == "best" and resumed.wait >= settings.patience
                    else settings.epochs),
            initial_epoch=resumed.epochs_done if resumed else 0,
            verbose=default_verbose() if settings.verbose is None else settings.verbose).history
    except KeyboardInterrupt:
        raise _interrupted(prepared, net) from None
    except fitting.NonFiniteTraining as error:
        runfolder.discard(run_dir, prepared.created)  # nothing in it may be loaded as a model
        raise ValueError(f"{diagnose.NAN_LOSS}: {error}; training stopped and {run_dir} was removed. The sequences "
                         f"with the largest values were {_largest_rows(prepared)}: check them (signtrain check), and "
                         f"see {diagnose.section(diagnose.NAN_LOSS)}") from None
    except (tf.errors.ResourceExhaustedError, OSError) as error:
        # TensorFlow raises ResourceExhaustedError for a full disk too: tell the two apart.
        if runfolder.disk_full(error, run_dir):
            runfolder.drop_partials(run_dir)
            message = runfolder.disk_full_message(run_dir, path(config.BEST_MODEL_FILE))
            if not os.path.exists(path(config.BEST_MODEL_FILE)) and not prepared.resume_dir:
                runfolder.discard(run_dir, prepared.created)  # nothing learned: the folder must not block the same --out
            raise OSError(message) from None
        if isinstance(error, OSError):
            raise
        raise MemoryError(
            f"{diagnose.OUT_OF_MEMORY}: out of memory at batch size {settings.batch_size}. Try --batch-size 8, "
            f"and close other notebooks on the same GPU (see {diagnose.section(diagnose.OUT_OF_MEMORY)})."
        ) from None
    seconds = time.perf_counter() - started
    return (fitting.read_history(path(config.RESULTS_FILE)) if resumed else history), seconds


def _discard_ensemble(prepared, what, kind=TrainingInterrupted):
    """An --ensemble run that stops keeps nothing (its members cannot be resumed): the error to raise."""
    runfolder.discard(prepared.run_dir, prepared.created)
    return kind(f"{what}; an --ensemble run cannot be resumed: {prepared.run_dir} was removed, start it again")


def _largest_rows(prepared, count=3):
    """The training sequences whose largest |value| is largest, by name: where a NaN loss comes from."""
    rows = prepared.split.training
    largest = np.array([np.abs(np.asarray(prepared.dataset.X[row])).max() for row in rows])
    return ", ".join(f"{sequence_name(prepared.dataset, row)} (|value| up to {value:.3g})"
                     for row, value in sorted(zip(rows, largest), key=lambda pair: -pair[1])[:count])


def _interrupted(prepared, net):
    """Ctrl-C: keep what was learned (resumable), or remove a run that learned nothing."""
    run_dir, path = prepared.run_dir, prepared.path
    if prepared.member:  # a member's fit: fit_members removes the whole run
        return TrainingInterrupted("interrupted")
    if prepared.settings.ensemble > 1:  # between or after its members' fits
        return _discard_ensemble(prepared, "interrupted")
    if os.path.exists(path(config.METRICS_FILE)):  # the last file: the run is complete
        return TrainingInterrupted(f"interrupted after the run was written: {run_dir} is complete")
    runfolder.drop_partials(run_dir)  # Ctrl-C may land in the middle of a checkpoint write or a file
    if not os.path.exists(path(config.BEST_MODEL_FILE)):
        if not prepared.resume_dir:  # nothing learned yet: the folder must not block the same --out next time
            runfolder.discard(run_dir, prepared.created)
        return TrainingInterrupted(f"interrupted before the first epoch ended: nothing to keep, {run_dir} "
                                   f"removed; start a new run")
    files.atomic_write(path(fitting.LAST_MODEL_FILE), net.save)
    if os.path.exists(path(config.RESULTS_FILE)):
        evaluate.plot_history(fitting.read_history(path(config.RESULTS_FILE)), path(config.HISTORY_PLOT_FILE))
    return TrainingInterrupted(
        f"interrupted: {run_dir} keeps {config.BEST_MODEL_FILE} (the best epoch so far), "
        f"{config.RESULTS_FILE} and {fitting.LAST_MODEL_FILE}. Continue with: signtrain train --resume {run_dir}")


def fit_members(prepared):
    """--ensemble N: the spec's fit once per member, seeds seed..seed+N-1 on the same split, each in
    run_dir/members/seed<S>; then the members as one model in run_dir/best_model.h5. Returns (that
    model, the first member's history, the seconds of all fits, the members)."""
    from tensorflow import keras

    from signtrain.model import ensemble

    settings, members, histories, seconds = prepared.settings, [], [], 0.0
    for seed in range(settings.seed, settings.seed + settings.ensemble):
        print(f"ensemble member {seed - settings.seed + 1} of {settings.ensemble}: seed {seed}")
        member_dir = runfolder.open_run(os.path.join(prepared.run_dir, "members", f"seed{seed}"))
        keras.utils.set_random_seed(seed)  # the member's weights and batch order; the split stays the run's
        member_settings = dataclasses.replace(settings, seed=seed)
        member = dataclasses.replace(prepared, settings=member_settings, run_dir=member_dir, resume_dir=None,
                                     member=True, net=fitting.new_model(member_settings, len(prepared.dataset.actions),
                                                                        prepared.dataset, prepared.strategy))
        try:
            history, took = fit_run(member, member.net, plan(member), None)
        except (TrainingInterrupted, KeyboardInterrupt):
            raise _discard_ensemble(prepared, "interrupted") from None
        except (OSError, MemoryError, ValueError) as error:  # a full disk, out of memory, NAN_LOSS: not resumable
            said = re.split(r"[.;,] (?:free some space, then )?[Cc]ontinue with", str(error))[0]  # no --resume advice
            raise _discard_ensemble(prepared, said, ValueError) from None
        finally:
            runfolder.release(member_dir)
        members.append(member.net)
        histories.append(history)
        seconds += took
    combined = ensemble.combine(members, fitting.builder(settings, len(prepared.dataset.actions), prepared.dataset))
    files.atomic_write(prepared.path(config.BEST_MODEL_FILE), combined.save)
    return combined, histories[0], seconds, members


def train(settings, resume_dir=None):
    """Run the whole pipeline; returns (run_dir, metrics.json's content as a dict).

    resume_dir: an interrupted run folder to continue (its args.yaml gives the settings).
    """
    import tensorflow as tf

    # Settings, data, split, model, run folder: the input is refused here or not at all.
    prepared = prepare(settings, resume_dir)
    net, resumed = prepared.net, None
    try:
        # args.yaml first: it proves the folder writable and says what is running.
        if not resume_dir:
            write_args(prepared.path(config.ARGS_FILE), prepared.settings, prepared.run_dir, prepared.dataset,
                       prepared.versions, prepared.split)
        # The fit's inputs, batch sizes and validation rows, decided once.
        fit_plan = plan(prepared) if prepared.settings.ensemble == 1 else None  # members plan their own
        # Where an interrupted run stopped: weights, optimizer and early-stopping state.
        if resume_dir:
            with distribute.scope(prepared.strategy):
                net, resumed = fitting.resume_state(resume_dir, net, prepared.settings.monitor)
            print(f"resuming {prepared.run_dir} after epoch {resumed.epochs_done}")
        # The spec's fit: EarlyStopping on validation, the best epoch checkpointed (--ensemble: per member).
        if prepared.settings.ensemble > 1:
            net, history, train_seconds, members = fit_members(prepared)
        else:
            (history, train_seconds), members = fit_run(prepared, net, fit_plan, resumed), None
        # Judge the reloaded best epoch on the test split only; write every file, metrics.json last.
        run = finish(prepared, net, history, train_seconds, resumed, members)
        tf.keras.backend.clear_session()
        if not distribute.is_chief():
            shutil.rmtree(prepared.run_dir, ignore_errors=True)
            print("worker done: the chief writes the run folder")
            return run.run_dir, run.metrics.to_json()
        print_summary(run)
        return run.run_dir, run.metrics.to_json()
    except KeyboardInterrupt:  # before the fit, or while the files are written (fit_run has its own)
        raise _interrupted(prepared, net) from None
    finally:
        runfolder.release(prepared.run_dir)
