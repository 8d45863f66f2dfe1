"""What `signtrain evaluate`, `predict` and `check` do with their parsed arguments, and the demo's
synthetic data (signtrain.cli parses the command line and reports errors)."""

import json
import os

import numpy as np

from signtrain import config

DEMO_MARKER = ".signtrain_synth.json"


def evaluate(args):
    from signtrain import files
    from signtrain.data import names, recordings
    from signtrain.model import network as model_lib
    from signtrain.report import evaluate
    from signtrain.export import infer

    for name in (config.MODEL_FILE, config.ACTIONS_FILE):
        if not os.path.exists(os.path.join(args.model, name)):
            raise FileNotFoundError(f"{os.path.join(args.model, name)} not found: --model takes a finished run folder")
    folder = os.path.join(args.model, "evaluations")
    files.require_writable(folder if os.path.isdir(folder) else args.model, "signtrain evaluate")
    actions_path = os.path.join(args.model, config.ACTIONS_FILE)
    model_path = os.path.join(args.model, config.MODEL_FILE)
    actions = infer.read_actions(actions_path)
    model = model_lib.load_model(model_path)
    if model.output_shape[-1] != len(actions):
        raise ValueError(f"{model_path} outputs {model.output_shape[-1]} classes but {actions_path} names "
                         f"{len(actions)} signs: they are not from the same run. Put the run's own actions.npy "
                         f"beside it")
    # Every recording is read and matched before any is scored: a bad second --data fails at once.
    folders = recordings.expand(args.data)  # a folder of recordings: each one scored
    loaded = [(data_dir, recordings.load_recording(actions, data_dir, args.aliases or (), args.any_layout))
              for data_dir in folders]
    for data_dir, recording in loaded:
        width = recording.dataset.num_features
        if width != model.input_shape[-1]:
            raise ValueError(f"the frames in {data_dir} have {width} values, {model_path} takes "
                             f"{model.input_shape[-1]} (the layout it was trained on): evaluate it on a recording in "
                             f"that layout")
    trained = _trained_profile(args.model)
    for (data_dir, recording), name in zip(loaded, recordings.names(folders)):  # one result per recording
        result = evaluate.evaluate_recording(model, actions, recording, trained)
        print(evaluate.format_recording_result(result))
        os.makedirs(folder, exist_ok=True)
        stem = names.name_key(name) or "data"  # bob/MP_Data: bob
        path, index = os.path.join(folder, f"{stem}.json"), 2
        while os.path.exists(path):  # never overwrite an earlier evaluation
            path, index = os.path.join(folder, f"{stem}{index}.json"), index + 1
        files.write_json(path, result)
        print(f"written to {path}")
    return 0


def _trained_profile(run_dir):
    """The training data's profile a run stored (signtrain.data.person); None for an older or damaged metrics.json."""
    import json

    from signtrain.data import person
    from signtrain.report.metrics import Metrics

    try:
        with open(os.path.join(run_dir, config.METRICS_FILE), encoding="utf-8") as handle:
            metrics = json.load(handle)
    except (OSError, ValueError):
        return None
    return person.Profile.from_json(Metrics.from_json(metrics).data_profile) if isinstance(metrics, dict) else None


def predict(args):
    from signtrain.export import infer

    path, model_format, actions = infer.find_model(args.model, args.format)
    predict = infer.load_predictor(path, model_format)
    usable = []
    for name, sequence in infer.read_sequences(args.data):
        if isinstance(sequence, str):
            print(f"{name}: skipped, {sequence}")
        elif predict.features and sequence.shape[1] != predict.features:
            print(f"{name}: skipped, its frames have {sequence.shape[1]} values, {path} takes {predict.features} "
                  f"(the layout it was trained on)")
        else:
            usable.append((name, sequence))
    if not usable:
        raise ValueError(f"no sequence in {args.data} that {path} can take: see the lines above")
    if len({sequence.shape for _, sequence in usable}) > 1:  # only when the model's width is unknown
        raise ValueError(f"the sequences in {args.data} have different frame widths; predict one layout at a time")
    X = np.stack([sequence for _, sequence in usable])
    try:
        probabilities = predict(X)
    except Exception as error:  # every runtime has its own exception types
        raise ValueError(f"{path} ({model_format}) could not run on {len(X)} sequences of shape {X.shape[1:]}: "
                         f"{type(error).__name__}: {error}") from None
    if probabilities.shape[1] != len(actions):
        raise ValueError(f"{path} outputs {probabilities.shape[1]} classes but the actions.npy beside it names "
                         f"{len(actions)} signs: they are not from the same run. Put the run's own actions.npy "
                         f"beside it")
    print(f"{path} ({model_format}), {len(usable)} sequence{'s' if len(usable) != 1 else ''}:")
    for (name, _), row in zip(usable, probabilities):
        if not np.isfinite(row).all():  # never shown as a probability
            print(f"{name}: skipped, {path} gives no finite probability for it: the model is damaged (weights "
                  f"that are NaN); train it again")
            continue
        print(f"{name}: " + ", ".join(f"{action} {p:.1%}" for action, p in infer.top_k(row, actions, args.top)))
    return 0


def check(args):
    """Reads exactly what `train` reads: one --data, several (one recording each), or a folder of
    recordings; --stream one folder (it packs that folder's cache)."""
    from signtrain.data import check as check_lib, dataset as data, recordings

    try:
        folders = recordings.expand(args.data)
        if args.stream and len(folders) > 1:
            raise ValueError(f"--stream packs one --data folder's cache, {len(folders)} recordings were given; "
                             f"check them without --stream")
        dataset = (data.load_dataset(folders[0], args.actions, any_layout=args.any_layout, stream=True) if args.stream
                   else recordings.load(folders, args.actions, args.aliases or (), args.any_layout))
    except (ValueError, OSError) as error:
        summary = {"verdict": "problems: cannot train", "error": str(error)}
        print(json.dumps(summary, indent=2) if args.json else f"error: {error}\nverdict: {summary['verdict']}")
        return 1
    summary = check_lib.summarize(dataset)
    summary["verdict"] = check_lib.verdict(summary)
    if dataset.recordings:
        summary["recordings"] = recordings.summary(dataset)
        if not args.json:
            print(recordings.format_summary(dataset))
    print(json.dumps(summary, indent=2) if args.json else check_lib.format_report(summary))
    return 1 if summary["verdict"].startswith("problems") else 0


def demo_data(data_dir):
    """The synthetic set for the demo: generated once, reused while the generator is unchanged."""
    from signtrain import __version__
    from signtrain.data import synth

    marker_path = os.path.join(data_dir, DEMO_MARKER)
    wanted = {"generator": "signtrain.data.synth", "version": __version__, "seed": 0,
              "sequences": config.NUM_SEQUENCES, "actions": list(config.SPEC_ACTIONS)}
    if os.path.exists(marker_path):
        with open(marker_path, encoding="utf-8") as handle:
            if json.load(handle) == wanted:
                print(f"reusing the synthetic data in {data_dir}")
                return data_dir
        raise FileExistsError(
            f"{data_dir} holds synthetic data from another signtrain version; delete it or pass --data-dir NEW_DIR"
        )
    print(f"writing synthetic MP_Data for {len(config.SPEC_ACTIONS)} signs to {data_dir} ...")
    synth.write_mp_data(data_dir, seed=0)
    with open(marker_path, "w", encoding="utf-8") as handle:
        json.dump(wanted, handle)
    return data_dir
