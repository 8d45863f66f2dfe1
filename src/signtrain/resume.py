"""What an interrupted run recorded in its args.yaml: its settings and its split, for --resume
(a resumed run trains and tests on exactly the sequences it started with)."""

import dataclasses
import os

import numpy as np

from signtrain import config
from signtrain.settings import TrainSettings, sequence_name


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
    from signtrain import data

    split = _read_args(run_dir).get("split")
    if not split:  # a run from before the split was recorded: the same seed gives the same split
        print(f"note: {run_dir} does not record its split; the seed's split of the folder as it is now is used")
        return data.split_indices(dataset.y, seed=seed)
    row_of = {sequence_name(dataset, row): row for row in range(len(dataset.y))}
    missing = [name for name in split["train"] + split["test"] if name not in row_of]
    if missing:
        raise ValueError(f"{len(missing)} sequences the run in {run_dir} trained or tested on are gone or no longer "
                         f"usable (e.g. {', '.join(missing[:3])}): resuming would change its split. Put them back, "
                         f"or start a new run")
    added = len(row_of) - len(split["train"]) - len(split["test"])
    if added:
        print(f"note: {added} sequences added since {run_dir} started are not used by the resumed run "
              f"(a new run trains on them)")
    return (np.array([row_of[name] for name in split["train"]]), np.array([row_of[name] for name in split["test"]]))


def settings_from_run(run_dir):
    """The settings an earlier run recorded in its args.yaml (for --resume)."""
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
    return TrainSettings(**{key: value for key, value in args.items() if key in fields and key != "out"})
