"""A training run's settings: the fields and their checks, the automatic choices, and what a run
records of them in args.yaml (signtrain.training.resume reads it back for --resume)."""

import argparse
import dataclasses
import os

import numpy as np

from signtrain import config, files
from signtrain.export import formats
from signtrain.training import distribute, fast
from signtrain.model.features import DEFAULT_FEATURES, FEATURE_SETS


def whole_number(minimum=0, maximum=None):
    """An argparse type: a whole number in [minimum, maximum], refused at once with the bounds
    (argparse names the flag)."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r} (e.g. 50)") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"expected a whole number {_bounds(minimum, maximum)}, got {value}")
        return value

    return parse


def _bounds(minimum, maximum):
    return f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"


def action_list(text):
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError('expected folder names separated by commas, e.g. --actions "Hello,Yes,No"')
    return names


def format_list(text):
    try:
        return formats.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def alias_list(text):
    """--alias A=B,...: [(A, B), ...] (signtrain.names.parse_aliases)."""
    from signtrain.data.names import parse_aliases

    return parse_aliases(text)


class Once(argparse.Action):
    """A flag that takes one value: given twice, refused (argparse would keep the last silently)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, f"_{self.dest}_given", False):
            parser.error(f"{option_string} was given twice; it takes one value (the second would replace the first)")
        setattr(namespace, f"_{self.dest}_given", True)
        setattr(namespace, self.dest, values)


TRAINING = ("train", "cv", "demo")  # the commands that train
SEED_MAX = 2**32 - 1  # what numpy and scikit-learn take (also synth's --seed)


def _flag(default, help, flag=None, metavar=None, parse=None, choices=None, switch=None, minimum=None, maximum=None,
          commands=TRAINING):
    """A setting that is a command-line flag, declared once: its default, help ({default} is filled
    in), spelling, bounds or choices, and the commands that take it. add_flags makes the argparse
    flag, validate checks it."""
    if minimum is not None:
        parse = whole_number(minimum, maximum)
    return dataclasses.field(default=default, metadata={"flag": {
        "help": help, "flag": flag, "metavar": metavar or ("N" if minimum is not None else None), "parse": parse,
        "choices": tuple(choices) if choices else None, "switch": switch, "minimum": minimum, "maximum": maximum,
        "commands": commands}})


@dataclasses.dataclass
class TrainSettings:
    """One training run's settings. Every flag of `signtrain train` / `cv` / `demo` is one field here."""
    data: str  # an MP_Data folder, or a list of them: one recording each (signtrain.data.recordings); cli's --data
    out: str = _flag(None, f"run folder to create (must be new or empty); default: the next {config.DEFAULT_RUNS_DIR}"
                           f"/exp, exp2, ... so no run is ever overwritten", metavar="DIR")
    epochs: int = _flag(config.DEFAULT_EPOCHS, "most epochs to train (default {default}); early stopping usually ends "
                                               "sooner", minimum=1)
    patience: int = _flag(config.DEFAULT_PATIENCE, "stop after N epochs without a better validation accuracy and keep "
                                                   "the best (default {default})", minimum=0)
    batch_size: int = _flag(config.DEFAULT_BATCH_SIZE, "sequences per training step (default {default}; try 8 if "
                                                       "memory runs out)", minimum=1)
    seed: int = _flag(config.DEFAULT_SEED, "random seed of the 90/10 split and the weights (default {default})",
                      minimum=0, maximum=SEED_MAX)
    actions: list = _flag(None, "signs to train on, in label order (folder names, comma-separated). Default: the "
                                "spec's 10 in the spec's order when the data has exactly them, else every folder, "
                                "sorted", metavar="A,B,...", parse=action_list, commands=TRAINING + ("check",))
    any_layout: bool = _flag(False, "accept frames that are not the 1662-value [pose, face, left hand, right hand] "
                                    "contract (e.g. 258 values without the face); the live app must then feed the "
                                    "same", switch="on", commands=("train", "cv", "check", "evaluate"))
    normalize: bool = _flag(False, "opt-in: make keypoints relative to the shoulders and scaled by shoulder width, as "
                                   "layers inside the saved model (the live app still feeds raw frames)", switch="on")
    features: str = _flag(DEFAULT_FEATURES, "what the network sees of each frame, computed by fixed layers inside the "
                                            "saved model (the live app still feeds raw frames): "
                          + "; ".join(f"{name}: {text}" for name, text in FEATURE_SETS.items()) + " (default {default})",
                          choices=FEATURE_SETS)
    augment: bool = _flag(False, "opt-in: add 2 altered copies of every training sequence (half mirrored to the other "
                                 "hand, small rotation/scale/shift, time warp, dropped frames); validation and test "
                                 "sequences are never altered", switch="on")
    test_data: str = _flag(None, "also evaluate the finished model on another recording (e.g. another person); its "
                                 "folders are matched to the signs by name, ignoring case, spaces and underscores",
                           metavar="DIR", commands=("train",))
    aliases: list = _flag(None, "names that mean the same sign in the other recording, e.g. --alias thanks=Thank_You",
                          flag="--alias", metavar="A=B,...", parse=alias_list,
                          commands=("train", "cv", "evaluate", "check"))
    fast: bool = _flag(None, "train with Keras' own LSTM loop. Default without a GPU: the same model, weights and "
                             "math, ~2.6x faster per epoch (input projections as one product over all steps, "
                             "hand-written backward pass); with a GPU: Keras' cuDNN kernel either way",
                       flag="--no-fast", switch="off")
    strategy: str = _flag("none", "tf.distribute: mirrored = every GPU of this machine, multiworker = several machines "
                                  "(each runs the same command with its TF_CONFIG); --batch-size is per replica",
                          choices=distribute.STRATEGIES)
    export: list = _flag(None, "also write the model as {formats} (comma-separated, signtrain.export.formats), each checked "
                               "against the Keras model on the test sequences; see signtrain export",
                         metavar="FORMAT,...", parse=format_list, commands=("train", "demo"))
    stream: bool = _flag(False, "for data bigger than memory: keep the sequences in the cache beside the data "
                                "(MP_Data/.signtrain_cache/, must be writable) and read each batch from it when "
                                "needed; trains the same as without it (not with --augment)", switch="on",
                          commands=("train",))
    precise_bn: bool = _flag(True, "the spec's plain recipe: BatchNorm keeps only its moving averages. Default: before "
                                   "every validation each BatchNorm layer's statistics are recomputed exactly over "
                                   "the training rows (same layers and weights; a stable model whatever the seed)",
                             flag="--no-precise-bn", switch="off")
    reshuffle: bool = None  # a new seeded batch order every epoch (batches.epoch_batches); None: with precise_bn
    monitor: str = _flag(config.MONITOR, "what early stopping and the checkpoint watch (default {default}, the "
                                         "spec's). Opt-in val_loss: a finer signal than the accuracy on a few dozen "
                                         "validation rows (see bench/results/stability.md)",
                         choices=config.MONITOR_MODES)
    hand_dropout: bool = _flag(False, "opt-in: while training, each hand zeroed over a random span of frames in "
                                      "half the sequences, a new draw every epoch, as MediaPipe loses a hand "
                                      "(signtrain.training.hand_dropout); validation, test and the saved model never see it; "
                                      "--no-hand-dropout turns it off under --recipe people",
                               switch="both")
    keep: str = _flag("best", "which weights the run keeps: best (default, the spec's): EarlyStopping on validation "
                              "keeps the best epoch; last: train exactly --epochs epochs, no early stop, keep the last "
                              "(validation rows come from the people trained on: their best epoch is not the best for "
                              "a new person)", choices=config.KEEP_CHOICES)
    ensemble: int = _flag(1, "opt-in: train N models (seeds seed, seed+1, ...; the same split) and ship them as one: "
                             "the mean of their probabilities, one action_model.h5 (N x training time, N x the LSTM "
                             "work per prediction; default {default})", minimum=1, maximum=10, commands=("train",))
    recipe: str = _flag("spec", "a set of options at once, printed at the start of the run; flags given beside it "
                                "win. " + "; ".join(f"{name}: {config.describe_recipe(name)}"
                                                   for name in config.RECIPES) + " (default {default})",
                        choices=config.RECIPES)
    verbose: int = None  # None: a progress bar on a terminal, one line per epoch otherwise

    def validate(self):
        """Every declared bound and choice, then what depends on several settings."""
        for field in flags():
            value, declared = getattr(self, field.name), field.metadata["flag"]
            low, high = declared["minimum"], declared["maximum"]
            whole = isinstance(value, int) and not isinstance(value, bool)
            if low is not None and (not whole or value < low or (high is not None and value > high)):
                raise ValueError(f"{flag_name(field.name)} must be a whole number {_bounds(low, high)}, got {value!r}")
            if declared["choices"] and value not in declared["choices"]:
                raise ValueError(f"{flag_name(field.name)} {value!r} is not one of {', '.join(declared['choices'])}")
        if self.export:
            self.export = formats.parse(self.export if isinstance(self.export, str) else ",".join(self.export))
            formats.require(self.export)
        recipe = f" (--recipe {self.recipe} sets {config.describe_recipe(self.recipe)})" if self.recipe != "spec" else ""
        if self.ensemble > 1 and self.strategy != "none":
            raise ValueError(f"--ensemble trains its members one after another on this machine; drop --strategy "
                             f"{self.strategy} or --ensemble{recipe}; --ensemble 1 keeps the rest")
        if self.normalize and self.features != "raw":
            raise ValueError(f"--normalize and --features {self.features} are two front-ends{recipe}: choose one "
                             f"(--features raw keeps --normalize)")
        if self.keep == "last" and (self.patience != config.DEFAULT_PATIENCE or self.monitor != config.MONITOR):
            import warnings

            warnings.warn("--keep last trains every epoch and keeps the last: --patience and --monitor do not apply",
                          stacklevel=2)
        if self.augment and self.stream:
            raise ValueError("--augment makes its copies in memory and cannot be combined with --stream; "
                             "drop one of them")


def flags():
    """The TrainSettings fields that are command-line flags, in declaration order."""
    return [field for field in dataclasses.fields(TrainSettings) if "flag" in field.metadata]


def flag_name(name):
    """How the user spells a setting or another argument: --batch-size, --no-fast, --alias, --data."""
    declared = next((field.metadata["flag"]["flag"] for field in flags() if field.name == name), None)
    return declared or "--" + name.replace("_", "-")


def add_flags(parser, command, defaults=True):
    """The argparse flags of every setting the command takes, made from their declarations.
    defaults=False: a flag not given leaves no attribute (given_flags)."""
    for field in flags():
        spec = field.metadata["flag"]
        if command not in spec["commands"]:
            continue
        text = spec["help"].replace("{default}", str(field.default))
        if "{formats}" in text:  # --export: the formats' table says which there are
            text = text.replace("{formats}", ", ".join(formats.export_names()))
        options = {"dest": field.name, "default": field.default if defaults else argparse.SUPPRESS, "help": text}
        if spec["switch"]:
            options["action"] = {"on": "store_true", "off": "store_false",
                                 "both": argparse.BooleanOptionalAction}[spec["switch"]]
        else:
            options.update(type=spec["parse"], choices=spec["choices"], metavar=spec["metavar"], action=Once)
        parser.add_argument(flag_name(field.name), **{key: value for key, value in options.items()
                                                      if value is not None or key == "default"})


def from_args(args, data, given=()):
    """TrainSettings from parsed arguments: every declared flag the command has, the rest defaults;
    then --recipe's values for the settings whose flag was not given (`given`: their names)."""
    if isinstance(data, list) and len(data) == 1:
        data = data[0]  # one --data: recorded as one folder, as always
    values = {field.name: getattr(args, field.name) for field in flags() if hasattr(args, field.name)}
    for name, value in config.RECIPES.get(values.get("recipe", "spec"), {}).items():
        if name not in given and name in values:  # a setting this command has (cv trains no ensemble)
            values[name] = value
    return TrainSettings(data=data, **values)


def resolved(settings):
    """The settings checked, with the automatic choices made (recorded as such in args.yaml)."""
    settings.validate()
    # Under a tf.distribute strategy Keras' own loop runs (on GPUs it is the cuDNN kernel anyway).
    use_fast = settings.strategy == "none" and (fast.available() if settings.fast is None else settings.fast)
    # The stable recipe is both halves: exact statistics and a new batch order every epoch.
    reshuffle = settings.precise_bn if settings.reshuffle is None else settings.reshuffle
    return dataclasses.replace(settings, fast=use_fast, reshuffle=reshuffle)


def check_options(settings, dataset):
    """The options that depend on the data, checked once it is loaded."""
    if settings.augment and dataset.num_features != config.NUM_FEATURES:
        raise ValueError(f"--augment needs the 1662-value layout, the data has {dataset.num_features} values per frame")
    if settings.hand_dropout:
        from signtrain.training import hand_dropout

        hand_dropout.check_layout(dataset.num_features)


def sequence_name(dataset, row):
    action, sequence = dataset.sequences[row]
    return f"{action}/{sequence}"


def fingerprints(dataset, rows, names):
    """{recording: sha1 of its takes among `rows`, in name order} (signtrain.data.twins.fingerprint)."""
    from signtrain.data import twins

    recording = dataset.recording if dataset.recording is not None else np.zeros(len(dataset.y), int)
    rows = sorted(rows, key=lambda row: sequence_name(dataset, row))
    return {name: twins.fingerprint(dataset.digests, [row for row in rows if recording[row] == index])
            for index, name in enumerate(names)}


def recording_record(data, dataset, rows):
    """args.yaml's recordings, data_folders (absolute) and fingerprints."""
    from signtrain.data import recordings

    folders = [os.path.abspath(folder) for folder in recordings.expand(data)]
    names = list(dataset.recordings or recordings.names(folders))
    return {"recordings": names, "data_folders": folders, "fingerprints": fingerprints(dataset, rows, names)}


def write_args(args_path, settings, run_dir, dataset, run_versions, split):
    """args.yaml: the settings, the data's shape and the split, in training order (validation_split
    takes the last 15% of "train"): --resume trains and tests on exactly these sequences."""
    args = dataclasses.asdict(settings)
    args.pop("verbose")
    args.update(
        split={"train": [sequence_name(dataset, i) for i in split.training],
               "test": [sequence_name(dataset, i) for i in split.test]},
        out=run_dir,
        # Where each recording was (absolute: --resume from another folder) and what it held (moved: relocated
        # by name or order with --data, checked by these fingerprints of the split's takes).
        **recording_record(settings.data, dataset, np.concatenate([split.training, split.test])),
        actions=dataset.actions,
        test_size=config.TEST_SIZE,
        validation_split=config.VALIDATION_SPLIT,
        sequence_length=int(dataset.X.shape[1]),
        num_features=dataset.num_features,
        versions=run_versions,
    )
    files.write_yaml(args_path, args)
