"""Command line: `signtrain train --data MP_Data`, and check, evaluate, cv, export, predict, demo, synth.

`python ml/train_model.py ...` is the same as `signtrain train ...`.
"""

import argparse
import os
import sys

from signtrain import config, subcommands
from signtrain.training import settings

DEMO_DATA_DIR = os.path.join("runs", "demo_data", "MP_Data")


_at_least_one = settings.whole_number(1)
_seed = settings.whole_number(0, settings.SEED_MAX)


def _add_data_flags(parser, data_required=True, several=False):
    if several:  # one recording per --data (a person, or a sitting); signtrain.data.recordings
        parser.add_argument("--data", required=data_required, metavar="DIR", action="append",
                            help="the MP_Data folder: DIR/<Action>/<sequence>/<frame>.npy, frames of 1662 values. "
                                 "Give it once per recording (person or sitting) to train on several, or pass a "
                                 "folder whose sub-folders are MP_Data trees; sign folders are matched by name "
                                 "across recordings (case, spaces, underscores; --alias)")
    else:
        parser.add_argument("--data", required=data_required, metavar="DIR",
                            help="the MP_Data folder: DIR/<Action>/<sequence>/<frame>.npy, frames of 1662 values")


def build_parser(defaults=True):
    """defaults=False: the settings' flags that were not given leave no attribute (given_settings)."""
    parser = argparse.ArgumentParser(
        prog="signtrain",
        description="Train the sign-language LSTM that the live translator loads (action_model.h5 + actions.npy).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_training_commands(commands, defaults)
    _add_tool_commands(commands)
    return parser


def given_settings(argv):
    """The names of the settings whose flags the command line gives (they win over --recipe)."""
    explicit = vars(build_parser(defaults=False).parse_args(argv))
    return {field.name for field in settings.flags() if field.name in explicit}


def _add_training_commands(commands, defaults=True):
    """train, cv and demo: their settings' flags come from signtrain.training.settings."""
    train = commands.add_parser("train", help="train on an MP_Data folder",
                                description="Train the spec's 3-layer LSTM on an MP_Data folder and write a run folder.")
    _add_data_flags(train, data_required=False, several=True)
    settings.add_flags(train, "train", defaults)  # every setting declared for train (signtrain.training.settings)
    train.add_argument("--resume", metavar="RUN_DIR", default=None,
                       help="continue an interrupted run in RUN_DIR with the settings in its args.yaml")

    cv = commands.add_parser("cv", help="cross-validation: K-fold, or leave-one-recording-out (--by recording)",
                             description="Train the spec's model K times (x R repeats), each fold the test split "
                                         "once, or with --by recording once per --data recording, tested on it and "
                                         "trained on the others; prints each result and the mean with a 95% "
                                         "interval and per-sign recall; writes cv.json to runs/cv/exp...")
    _add_data_flags(cv, several=True)
    settings.add_flags(cv, "cv", defaults)
    cv.add_argument("--by", choices=("fold", "recording"), default="fold",
                    help="fold: stratified K-fold over all sequences (default); recording: leave-one-recording-out, "
                         "each --data recording the test set once, trained on the others: the accuracy on a "
                         "person the model never saw")
    cv.add_argument("--folds", type=settings.whole_number(2), default=5, metavar="K", help="folds (default 5)")
    cv.add_argument("--repeats", type=_at_least_one, default=1, metavar="R", help="repeats with new folds (default 1)")

    demo = commands.add_parser("demo", help="make synthetic data for the spec's 10 signs and train on it",
                               description="Generate an MP_Data set with the synthetic signer (no download), "
                                           "then train on it with the spec's defaults.")
    demo.add_argument("--data-dir", default=DEMO_DATA_DIR, metavar="DIR",
                      help=f"where the synthetic MP_Data goes (default {DEMO_DATA_DIR}; reused when already there)")
    settings.add_flags(demo, "demo", defaults)


def _add_tool_commands(commands):
    """check, evaluate, predict, export and synth."""
    from signtrain.export import formats

    check = commands.add_parser("check", help="check an MP_Data folder before training",
                                description="Read an MP_Data folder as training would and report, per action, "
                                            "usable and skipped sequences, undetected body parts, frozen and "
                                            "duplicate takes and class balance, with a verdict. Exit code 1 "
                                            "when training cannot go on.")
    _add_data_flags(check, several=True)
    settings.add_flags(check, "check")
    check.add_argument("--stream", action="store_true",
                       help="for data bigger than memory: pack the sequences into MP_Data/.signtrain_cache/ "
                            "(as train --stream does, which then reuses it) and read them from there in chunks")
    check.add_argument("--json", action="store_true", help="print the report as JSON")

    evaluate = commands.add_parser("evaluate", help="evaluate a trained run on another recording",
                                   description="Score RUN_DIR's action_model.h5 on every sequence of another "
                                               "MP_Data folder whose sign it knows; writes RUN_DIR/evaluations/.")
    evaluate.add_argument("--model", required=True, metavar="RUN_DIR", help="a finished run folder")
    _add_data_flags(evaluate, several=True)
    settings.add_flags(evaluate, "evaluate")

    predict = commands.add_parser(
        "predict", help="print the top-3 signs for a sequence or a folder of them",
        description="A sanity check of a trained model, in any format: the top signs with probabilities for one "
                    "sequence (an .npy of shape (30, 1662), or a folder with 0.npy..29.npy) or for every "
                    "sequence under a folder.")
    suffixes = ", ".join(suffix for entry in formats.export_formats() for suffix in entry.suffixes)
    predict.add_argument("--model", required=True, metavar="RUN_DIR_OR_FILE",
                         help=f"a run folder (with --format) or a model file: {suffixes}, or a SavedModel folder; "
                              f"actions.npy must be beside it")
    predict.add_argument("--data", required=True, metavar="SEQ_DIR_OR_NPY", help="what to classify")
    predict.add_argument("--format", choices=formats.names(), default=None,
                         help="which of a run folder's files to use (default keras: action_model.h5)")
    predict.add_argument("--top", type=_at_least_one, default=3, metavar="K", help="signs to show (default 3)")

    exports = [formats.get(name) for name in formats.export_names()]
    export = commands.add_parser(
        "export", help=f"write a finished run's model as {', '.join(entry.name for entry in exports)}",
        description=f"Convert RUN_DIR/{config.MODEL_FILE}, check the converted model's outputs against Keras on the "
                    f"run's test sequences (max abs difference <= {config.EXPORT_TOLERANCE:g}, same top-1 sign), and "
                    f"record it in metrics.json. Files: {'; '.join(entry.about for entry in exports)}.")
    export.add_argument("run_dir", metavar="RUN_DIR", help="a finished run folder")
    export.add_argument("--format", type=settings.format_list, required=True, metavar="FORMAT,...",
                        help=f"{', '.join(entry.name for entry in exports)} (comma-separated for several)")
    export.add_argument("--data", default=None, metavar="DIR", action="append",
                        help="where the run's recordings are now, when they moved: one --data per recording, matched "
                             "by name or in the run's order (default: from args.yaml)")

    synth = commands.add_parser("synth", help="write a synthetic MP_Data folder",
                                description="Write a synthetic MP_Data tree in the exact data contract.")
    synth.add_argument("--out", required=True, metavar="DIR", help="a new or empty folder")
    synth.add_argument("--sequences", type=_at_least_one, default=config.NUM_SEQUENCES, metavar="N",
                       help=f"sequences per sign (default {config.NUM_SEQUENCES})")
    synth.add_argument("--seed", type=_seed, default=0, metavar="N", help="random seed (default 0)")
    synth.add_argument("--actions", type=settings.action_list, default=list(config.SPEC_ACTIONS), metavar="A,B,...",
                       help="signs to generate (default: the spec's 10)")


def _quiet_tensorflow():
    # TensorFlow's C++ start-up chatter (CPU feature notes) hides our own output; errors still show.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _train(args):
    from signtrain.training.train import settings_from_run, train

    if args.resume:
        defaults = vars(build_parser().parse_args(["train"]))
        given = [key for key, value in vars(args).items() if key not in ("resume", "export", "given", "data")
                 and not key.startswith("_")
                 and value != defaults[key]]
        if given:
            flags = ", ".join(settings.flag_name(key) for key in given)
            raise ValueError(f"--resume continues {args.resume} with the settings in its {config.ARGS_FILE}; {flags} "
                             f"would change them. Drop {flags} (only --export, and --data where the recordings moved, "
                             f"may be added), or start a new run")
        recorded = settings_from_run(args.resume, data=args.data)
        if args.export:
            recorded.export = args.export
        return train(recorded, resume_dir=args.resume)
    if not args.data:
        raise ValueError("--data DIR is required (the MP_Data folder), or --resume RUN_DIR to continue a run")
    return train(settings.from_args(args, args.data, args.given))


def _show_warning(message, category, filename, lineno, file=None, line=None):
    # One line a warning, as the rest of the output: "warning: ..." (not Python's file:line prefix).
    print(f"warning: {message}", file=sys.stderr)


def _terminate_as_interrupt(signum, frame):
    # SIGTERM (`kill`, a closed session, a job scheduler's time limit) stops a run as Ctrl-C does:
    # the best model and the optimizer state are kept and the message says how to resume.
    raise KeyboardInterrupt


def main(argv=None):
    import signal
    import threading
    import warnings

    try:
        args = build_parser().parse_args(argv)
        args.given = given_settings(argv) if args.command in settings.TRAINING else set()
    except KeyboardInterrupt:  # Ctrl-C while starting up: nothing was read or written yet
        print("interrupted before anything was done", file=sys.stderr)
        return 130
    _quiet_tensorflow()
    warnings.showwarning = _show_warning
    on_main_thread = threading.current_thread() is threading.main_thread()  # only it may set handlers
    previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt) if on_main_thread else None
    try:
        return _run(args)
    finally:
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous)
            if argv is None:  # the command itself, about to exit: its files are written or it refused
                # TensorFlow's teardown takes a second; a Ctrl-C then would only turn the exit code into -2.
                signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run(args):
    try:
        if args.command == "check":
            return subcommands.check(args)
        if args.command == "synth":
            from signtrain.data import synth

            synth.write_mp_data(args.out, actions=args.actions, sequences=args.sequences, seed=args.seed)
            print(f"wrote {args.sequences} sequences x {len(args.actions)} signs to {args.out}")
            return 0
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            print("error: TensorFlow is not installed. Install it with: pip install 'signtrain[cpu]' "
                  "(or 'signtrain[gpu]' on a CUDA machine; Colab already has it).", file=sys.stderr)
            return 2
        from signtrain.training.crossval import cross_validate
        from signtrain.training.train import TrainingInterrupted, train

        if args.command == "evaluate":
            return subcommands.evaluate(args)
        if args.command == "predict":
            return subcommands.predict(args)
        if args.command == "export":
            from signtrain.export import convert as export

            export.export_run(args.run_dir, args.format, args.data)
            return 0
        if args.command == "cv":
            cross_validate(settings.from_args(args, args.data, args.given), folds=args.folds, repeats=args.repeats, out=args.out, by=args.by)
            return 0
        try:
            if args.command == "demo":
                train(settings.from_args(args, subcommands.demo_data(args.data_dir), args.given))
            else:
                _train(args)
        except TrainingInterrupted as interrupted:
            print(interrupted, file=sys.stderr)
            return 130
        return 0
    except (ValueError, OSError, MemoryError, ImportError) as error:  # FileNotFoundError, PermissionError, a full disk, ...
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before or after training: nothing half-written is left behind
        print("interrupted: nothing half-written was left behind (every file is written under a temp name first)",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
