"""Several recordings in one training: `--data A --data B` (or `--data FOLDER` whose sub-folders are
MP_Data trees). Each is one recording: one person, or one sitting of a person.

A model trained on one person scores far less on the next one (bench/results/real_people.md); the
only honest number for "a person the model never saw" is leave-one-recording-out
(`signtrain cv --by recording`), and it needs the recordings kept apart. Sign folders are matched
across recordings as `evaluate` matches them (case, spaces, underscores, hyphens; --alias), and
every row remembers its recording.
"""

import dataclasses
import os

import numpy as np

from signtrain import config
from signtrain.data import dataset as data, names as sign_names, twins


def expand(data_dirs, flag="--data"):
    """The MP_Data folders named by --data: one folder, several, or one folder of MP_Data trees."""
    data_dirs = [data_dirs] if isinstance(data_dirs, str) else list(data_dirs)
    data_dirs = [tree for path in data_dirs for tree in (_trees_inside(path, flag) or [path])]
    first = {}
    for index, path in enumerate(data_dirs):
        earlier = first.setdefault(os.path.realpath(path), index)
        if earlier != index:  # its takes would be in training and in the test split at once
            raise ValueError(f"{flag} {data_dirs[earlier]!r} (the {_ordinal(earlier)} {flag}) and {flag} {path!r} (the "
                             f"{_ordinal(index)}) are the same folder: give each recording once")
    return data_dirs


def _ordinal(index):
    return {0: "1st", 1: "2nd", 2: "3rd"}.get(index, f"{index + 1}th")


def _is_tree(folder):
    """A folder with at least one sign folder that holds numbered sequence folders."""
    names = [name for name in os.listdir(folder) if os.path.isdir(os.path.join(folder, name))
             and not data.is_ignored(name)]
    return any(data.has_sequence_folders(os.path.join(folder, name)) for name in names)


def _subfolders(folder):
    return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                  if os.path.isdir(os.path.join(folder, name)) and not data.is_ignored(name))


def _tree_in(folder):
    """folder when it is an MP_Data tree, else its one sub-folder that is (bob/MP_Data beside bob/videos)."""
    if _is_tree(folder):
        return folder
    inner = [path for path in _subfolders(folder) if _is_tree(path)]
    return inner[0] if len(inner) == 1 else None


def _trees_inside(folder, flag="--data"):
    """The MP_Data trees of a folder of recordings (each sub-folder one person's tree), else [].
    Empty sub-folders are passed over; one that holds something else is named, with the fix."""
    if not os.path.isdir(folder) or _is_tree(folder):
        return []
    trees = {path: _tree_in(path) for path in _subfolders(folder)}
    found = [tree for tree in trees.values() if tree]
    others = [path for path, tree in trees.items() if not tree and os.listdir(path)]
    if len(found) < 2:  # one person's folder (bob/MP_Data beside bob/videos): find_actions names the tree inside
        return []
    if others:
        raise ValueError(f"{flag} {folder!r} is a folder of recordings ({', '.join(names(found))}), but "
                         f"{', '.join(map(repr, others))} holds no MP_Data tree (<Sign>/<number>/<frame>.npy): "
                         f"move it out of {folder!r} or delete it, or pass each recording with its own {flag}")
    return found


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
                if not sign_names.match_actions(order, [folder], aliases):
                    order.append(folder)
        order = list(config.SPEC_ACTIONS) if set(order) == set(config.SPEC_ACTIONS) else sorted(order)
    matched = [sign_names.match_actions(order, folders, aliases) for folders in found]
    every = sorted({folder for folders in found for folder in folders})
    for left, right, unknown in sign_names.unmatched_aliases(aliases, order, every):
        import warnings

        warnings.warn(f"--alias {left}={right}: {' and '.join(map(repr, unknown))} names no sign folder of any --data "
                      f"recording (folders: {every}); the alias matches nothing. Check the spelling", stacklevel=2)
    absent = [action for action in order if not any(action in m.values() for m in matched)]
    if absent:
        raise ValueError(f"--actions names {absent} but no --data folder has such a sign folder "
                         f"(folders: {sorted({f for folders in found for f in folders})}); fix the spelling")
    return order, matched


def load(data_dirs, actions=None, aliases=(), any_layout=False, use_cache=True, recording_names=None):
    """One Dataset of every recording; its `recording` gives each row's recording (an index into
    `recordings`). One folder: data.load_dataset, as always. recording_names: the names a run
    recorded, for folders that moved (relocate); by default each folder's own (names)."""
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
    recording_names = list(recording_names or names(data_dirs))
    if len(recording_names) != len(data_dirs):
        raise ValueError(f"{len(data_dirs)} recordings ({', '.join(data_dirs)}) for {len(recording_names)} names "
                         f"({', '.join(recording_names)}): give one --data per recording")
    label_of = [np.array([order.index(folders[action]) for action in part.actions])
                for part, folders in zip(parts, matched)]
    dataset = data.Dataset(
        X=np.concatenate([part.X for part in parts]),
        y=np.concatenate([labels[part.y] for labels, part in zip(label_of, parts)]),
        actions=order,
        # (the folder as on disk, "recording/sequence"): unique across recordings (args.yaml's split
        # names them so), and found again with folder_of.
        sequences=[(folder, f"{name}/{sequence}") for name, part in zip(recording_names, parts)
                   for folder, sequence in part.sequences],
        skipped=[dict(skip, recording=name, sign=folders[skip["action"]]) for name, part, folders
                 in zip(recording_names, parts, matched) for skip in part.skipped],
        notes=[note for part in parts for note in part.notes],
        layout_problem=next((part.layout_problem for part in parts if part.layout_problem), None),
        recordings=recording_names,
        recording=np.concatenate([np.full(len(part.y), index) for index, part in enumerate(parts)]),
    )
    same = twins.same_recordings(dataset.twin_group, dataset.recording, recording_names)
    if same:
        copy, original = same[0]
        raise ValueError(f"every take of the recording {copy!r} is identical to a take of {original!r} "
                         f"({dict(zip(recording_names, data_dirs))[copy]!r} is a copy): give each recording once")
    return dataset


def folder_of(data_dirs, action, sequence, recording_names=None):
    """The sequence folder of a Dataset.sequences entry, for one --data folder or several (named as a
    run recorded them, when given: relocate)."""
    folders = expand(data_dirs)
    if len(folders) == 1 and "/" not in sequence:
        return os.path.join(folders[0], action, sequence)
    recording, _, take = sequence.partition("/")
    by_name = relocate(recording_names, folders) if recording_names else dict(zip(names(folders), folders))
    return os.path.join(by_name.get(recording, os.path.join("<no recording named>", recording)), action, take)


def relocate(recorded_names, data_dirs, flag="--data"):
    """{recorded name: folder}: a run's recordings found again in data_dirs after they moved, matched
    by name (bob/MP_Data is 'bob'); those renamed, in the order given. The caller checks the content."""
    folders = expand(data_dirs, flag)
    found = names(folders)
    # By name first (a folder of recordings may hold new ones: not used); the renamed ones in the order given.
    mapped = {name: folder for name, folder in zip(found, folders) if name in recorded_names}
    unnamed = [name for name in recorded_names if name not in mapped]
    others = [folder for name, folder in zip(found, folders) if name not in recorded_names]
    if not unnamed or len(unnamed) == len(others):
        mapped.update(zip(unnamed, others))
        return {name: mapped[name] for name in recorded_names}
    raise ValueError(f"the run trained on {len(recorded_names)} recordings ({', '.join(recorded_names)}); {flag} "
                     f"names {len(folders)} ({', '.join(found)}): give one {flag} per recording, in that order")


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


@dataclasses.dataclass
class Recording:
    """Another recording, its folders matched to the model's signs (what evaluate scores)."""
    data: str  # the folder as given
    matched: dict  # {folder name: the model's sign}
    unmatched_folders: list  # folders that name no sign of the model (not scored)
    dataset: object  # signtrain.data.dataset.Dataset of the matched folders


def load_recording(model_actions, data_dir, aliases=(), any_layout=False, flag="--data"):
    """The sequences of another MP_Data folder whose folder names a sign of the model.

    Called before training by `train --test-data`, so a wrong folder fails at once, not after it.
    flag: the option that named the folder, for messages.
    """
    import warnings

    folders = data.find_actions(data_dir, flag)
    matched = sign_names.match_actions(model_actions, folders, aliases)
    for left, right, unknown in sign_names.unmatched_aliases(aliases, model_actions, folders):  # a typo: unscored
        warnings.warn(f"--alias {left}={right}: {' and '.join(map(repr, unknown))} is neither a sign of the model "
                      f"{list(model_actions)} nor a folder of {data_dir!r}; the alias matches nothing. "
                      f"Check the spelling", stacklevel=2)
    if not matched:
        raise ValueError(
            f"no folder of {data_dir!r} matches a sign of the model {list(model_actions)}. "
            f"Folders: {folders}. Declare the same sign under two names with --alias folder_name=model_name."
        )
    return Recording(data=data_dir, matched=matched, unmatched_folders=[f for f in folders if f not in matched],
                     dataset=data.load_dataset(data_dir, list(matched), any_layout=any_layout))
