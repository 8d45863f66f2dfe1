"""What an interrupted run recorded in its args.yaml: its settings and its split, for --resume
(a resumed run trains and tests on exactly the sequences it started with)."""

import dataclasses
import os

import numpy as np

from signtrain import config
from signtrain.training.settings import TrainSettings, fingerprints, sequence_name


def _read_args(run_dir):
    import yaml

    args_path = os.path.join(run_dir, config.ARGS_FILE)
    if not os.path.exists(args_path):
        raise FileNotFoundError(f"{args_path} not found: --resume takes a run folder that signtrain started")
    with open(args_path, encoding="utf-8") as handle:
        try:
            args = yaml.safe_load(handle)
        except yaml.YAMLError as error:
            raise ValueError(f"{args_path} is not readable YAML ({error}); --resume needs the args.yaml a run "
                             f"wrote") from None
    if not isinstance(args, dict) or "data" not in args:
        raise ValueError(f"{args_path} does not hold a run's settings; --resume needs the args.yaml a run wrote")
    return args


def resumed_split(run_dir, dataset, seed):
    """(train_idx, test_idx) of the sequences an interrupted run recorded in its args.yaml."""
    from signtrain.data import dataset as data

    args = _read_args(run_dir)
    split = args.get("split")
    if not split:  # a run from before the split was recorded: the same seed gives the same split
        print(f"note: {run_dir} does not record its split; the seed's split of the folder as it is now is used")
        return data.split_indices(dataset.y, seed=seed)
    row_of = {sequence_name(dataset, row): row for row in range(len(dataset.y))}
    missing = [name for name in split["train"] + split["test"] if name not in row_of]
    if missing:
        raise ValueError(f"{len(missing)} sequences the run in {run_dir} trained or tested on are gone or no longer "
                         f"usable (e.g. {', '.join(missing[:3])}): resuming would change its split. Put them back, "
                         f"or start a new run")
    train_idx, test_idx = (np.array([row_of[name] for name in split["train"]], dtype=np.int64),
                           np.array([row_of[name] for name in split["test"]], dtype=np.int64))
    _check_takes(run_dir, args, dataset, np.concatenate([train_idx, test_idx]))
    group = dataset.twin_group
    tested = set(group[test_idx].tolist())
    added = len(row_of) - len(train_idx) - len(test_idx) - int(np.isin(group, list(tested)).sum() - len(test_idx))
    if added > 0:
        print(f"note: {added} sequences added since {run_dir} started are not used by the resumed run "
              f"(a new run trains on them)")
    return train_idx, test_idx


def _check_takes(run_dir, args, dataset, rows):
    """Refuse a recording whose takes are not the ones the run trained and tested on (same names,
    other frames: a folder replaced by a copy of another, or re-recorded)."""
    recorded = args.get("fingerprints") or {}
    now = fingerprints(dataset, rows, list(recorded)) if recorded else {}
    changed = [name for name in recorded if now.get(name) != recorded[name]]
    if changed:
        raise ValueError(f"the takes of {', '.join(map(repr, changed))} are not those {run_dir} trained and tested on "
                         f"(same names, other frames: a folder replaced or re-recorded); resuming would mix two data "
                         f"sets. Give the recording the run had, or start a new run")


def recorded_names(run_dir):
    """The recordings' names a run recorded (None for one folder or an older run)."""
    names = _read_args(run_dir).get("recordings")
    return names if names and len(names) > 1 else None


def _data_now(args, run_dir, data):
    """args.yaml's data, or where it is now: --data given with --resume (relocated by name or order),
    else the absolute folders args.yaml kept when the relative ones are not found from here."""
    from signtrain.data import recordings

    names = args.get("recordings") or recordings.names(recordings.expand(args["data"]))
    if data:
        by_name = recordings.relocate(names, data)
        folders = [by_name[name] for name in names]
    else:
        folders = recordings.expand(args["data"])
        if len(names) > 1 and all(os.path.isdir(folder) for folder in folders):  # a folder of recordings may have grown
            by_name = recordings.relocate(names, folders)
            folders = [by_name[name] for name in names]
        if not all(os.path.isdir(folder) for folder in folders):
            folders = args.get("data_folders") or folders
        if not all(os.path.isdir(folder) for folder in folders):
            raise FileNotFoundError(f"{run_dir} trained on {', '.join(folders)}, not found any more: pass where the "
                                    f"recordings are now, --resume {run_dir} --data NEW_FOLDER (one --data per "
                                    f"recording, in this order: {', '.join(names)})")
    return folders[0] if len(folders) == 1 else folders


def split_rows(dataset, seed, resume_dir=None):
    """The run's Split: the spec's 90/10 split (or the one a resumed run recorded), with no training row
    identical to a test row (signtrain.data.twins): such a copy is left out of training, and said so."""
    from signtrain.data import dataset as data, twins

    train_idx, test_idx = (resumed_split(resume_dir, dataset, seed) if resume_dir
                           else data.split_indices(dataset.y, seed=seed))
    train_idx, left_out = twins.keep_apart(train_idx, test_idx, dataset.twin_group)
    if len(left_out):
        print(f"left out of training: {len(left_out)} sequences identical to a test sequence "
              f"({', '.join(sequence_name(dataset, row) for row in left_out[:5])}); the test split is as drawn")
    return data.Split.of(train_idx, test_idx)


def settings_from_run(run_dir, data=None):
    """The settings an earlier run recorded in its args.yaml (for --resume); data: where its
    recordings are now, when they moved."""
    args = _read_args(run_dir)
    # metrics.json is the last file a run writes: without it a run stopped while writing its files
    # (after training) is resumable, and resuming only writes them.
    if os.path.exists(os.path.join(run_dir, config.METRICS_FILE)):
        raise FileExistsError(f"{run_dir} finished already ({config.METRICS_FILE} is there); nothing to resume")
    fields = {field.name for field in dataclasses.fields(TrainSettings)}
    args.setdefault("precise_bn", False)  # a run started before exact BatchNorm statistics existed
    args.setdefault("reshuffle", False)
    args.setdefault("hand_dropout", False)  # runs started before these settings existed
    args.setdefault("keep", "best")
    if args.get("ensemble", 1) > 1:
        raise ValueError(f"{run_dir} is an --ensemble run: its members are trained one after another and cannot be "
                         f"resumed; start it again")
    args["data"] = _data_now(args, run_dir, data)
    return TrainSettings(**{key: value for key, value in args.items() if key in fields and key != "out"})
