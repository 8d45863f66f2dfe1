"""Several recordings in one training: `--data A --data B` (or `--data FOLDER` whose sub-folders are
MP_Data trees). Each is one recording: one person, or one sitting of a person.

A model trained on one person scores far less on the next one (bench/results/real_people.md); the
only honest number for "a person the model never saw" is leave-one-recording-out
(`signtrain cv --by recording`), and it needs the recordings kept apart. Sign folders are matched
across recordings as `evaluate` matches them (case, spaces, underscores, hyphens; --alias), and
every row remembers its recording.
"""

import os

import numpy as np

from signtrain import config, data, evaluate


def expand(data_dirs, flag="--data"):
    """The MP_Data folders named by --data: one folder, several, or one folder of MP_Data trees."""
    data_dirs = [data_dirs] if isinstance(data_dirs, str) else list(data_dirs)
    if len(data_dirs) == 1 and os.path.isdir(data_dirs[0]):
        inner = _trees_inside(data_dirs[0])
        if inner:
            return inner
    return data_dirs


def _is_tree(folder):
    """A folder with at least one sign folder that holds numbered sequence folders."""
    names = [name for name in os.listdir(folder) if os.path.isdir(os.path.join(folder, name))
             and not data._is_ignored(name)]
    return any(data._has_sequence_folders(os.path.join(folder, name)) for name in names)


def _subfolders(folder):
    return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                  if os.path.isdir(os.path.join(folder, name)) and not data._is_ignored(name))


def _tree_in(folder):
    """folder when it is an MP_Data tree, its only sub-folder when that is one (bob/MP_Data), else None."""
    if _is_tree(folder):
        return folder
    inner = _subfolders(folder)
    return inner[0] if len(inner) == 1 and _is_tree(inner[0]) else None


def _trees_inside(folder):
    """The MP_Data trees of a folder of recordings (every sub-folder one person's tree), else []."""
    subfolders = _subfolders(folder)
    if len(subfolders) < 2 or _is_tree(folder):
        return []
    trees = [_tree_in(path) for path in subfolders]
    return trees if all(trees) else []


def names(data_dirs):
    """A short, unique name per recording: its folder's name (the parent's when it is MP_Data)."""
    out = []
    for path in data_dirs:
        path = os.path.normpath(os.path.abspath(path))
        name = os.path.basename(path)
        if name.lower() == "mp_data":
            name = os.path.basename(os.path.dirname(path)) or name
        candidate, index = name, 2
        while candidate in out:
            candidate, index = f"{name}_{index}", index + 1
        out.append(candidate)
    return out


def _actions(data_dirs, requested, aliases):
    """(actions in label order, [{folder: action} per recording])."""
    found = [data.find_actions(path) for path in data_dirs]
    if requested:
        order = list(requested)
    else:
        order = []
        for folders in found:  # the first recording's spelling of each sign
            for folder in folders:
                if not evaluate.match_actions(order, [folder], aliases):
                    order.append(folder)
        order = list(config.SPEC_ACTIONS) if set(order) == set(config.SPEC_ACTIONS) else sorted(order)
    matched = [evaluate.match_actions(order, folders, aliases) for folders in found]
    absent = [action for action in order if not any(action in m.values() for m in matched)]
    if absent:
        raise ValueError(f"--actions names {absent} but no --data folder has such a sign folder "
                         f"(folders: {sorted({f for folders in found for f in folders})}); fix the spelling")
    return order, matched


def load(data_dirs, actions=None, aliases=(), any_layout=False, use_cache=True):
    """One Dataset of every recording; its `recording` gives each row's recording (an index into
    `recordings`). One folder: data.load_dataset, as always."""
    data_dirs = expand(data_dirs)
    if len(data_dirs) == 1:
        return data.load_dataset(data_dirs[0], actions, any_layout=any_layout, use_cache=use_cache)
    order, matched = _actions(data_dirs, actions, aliases)
    parts = []
    for path, folders in zip(data_dirs, matched):
        if not folders:
            raise ValueError(f"--data {path!r} has none of the signs {order}; leave it out or use --alias "
                             f"folder_name=sign")
        parts.append(data.load_dataset(path, list(folders), any_layout=any_layout, use_cache=use_cache))
    widths = {part.num_features for part in parts}
    if len(widths) > 1:
        raise ValueError(f"the --data folders have frames of different widths "
                         f"({', '.join(f'{p}: {d.num_features}' for p, d in zip(data_dirs, parts))}); "
                         f"train on recordings of one layout")
    recording_names = names(data_dirs)
    label_of = [np.array([order.index(folders[action]) for action in part.actions])
                for part, folders in zip(parts, matched)]
    return data.Dataset(
        X=np.concatenate([part.X for part in parts]),
        y=np.concatenate([labels[part.y] for labels, part in zip(label_of, parts)]),
        actions=order,
        # (the folder as on disk, "recording/sequence"): unique across recordings (args.yaml's split
        # names them so), and found again with folder_of.
        sequences=[(folder, f"{name}/{sequence}") for name, part in zip(recording_names, parts)
                   for folder, sequence in part.sequences],
        skipped=[dict(skip, recording=name) for name, part in zip(recording_names, parts) for skip in part.skipped],
        notes=[note for part in parts for note in part.notes],
        layout_problem=next((part.layout_problem for part in parts if part.layout_problem), None),
        recordings=recording_names,
        recording=np.concatenate([np.full(len(part.y), index) for index, part in enumerate(parts)]),
    )


def folder_of(data_dirs, action, sequence):
    """The sequence folder of a Dataset.sequences entry, for one --data folder or several."""
    folders = expand(data_dirs)
    if len(folders) == 1:
        return os.path.join(folders[0], action, sequence)
    recording, _, take = sequence.partition("/")
    by_name = dict(zip(names(folders), folders))
    return os.path.join(by_name.get(recording, os.path.join("<no recording named>", recording)), action, take)


def summary(dataset):
    """[{"name", "sequences": {sign: count}}] per recording (one entry for a single folder)."""
    recording_names = dataset.recordings or ["data"]
    recording = dataset.recording if dataset.recording is not None else np.zeros(len(dataset.y), int)
    return [{"name": name, "sequences": {action: int(np.sum((recording == index) & (dataset.y == label)))
                                         for label, action in enumerate(dataset.actions)}}
            for index, name in enumerate(recording_names)]


def format_summary(dataset):
    """The data check's lines about where the sequences come from ("" for one folder)."""
    if not dataset.recordings:
        return ""
    lines = [f"recordings: {len(dataset.recordings)}"]
    for entry in summary(dataset):
        counts = ", ".join(f"{action} {count}" for action, count in entry["sequences"].items())
        lines.append(f"  {entry['name']}: {sum(entry['sequences'].values())} sequences ({counts})")
    return "\n".join(lines)
