"""Writing a run's files so that nothing the user had is ever half-written or overwritten.

Every file is written under a temporary name in the same folder and renamed into place: an
interrupted run leaves either the old file or the new one, never a truncated file. Train, cli and
export write everything through here.
"""

import json
import os
import shutil
import tempfile

import numpy as np


def partial_name(path):
    folder, name = os.path.split(path)
    stem, extension = os.path.splitext(name)
    # Keras picks the format from the extension, so the temp name keeps it.
    return os.path.join(folder, f".{stem}.partial{extension}")


def remove_path(path, ignore_errors=False):
    """Delete a file or a folder (a SavedModel is a folder) if it is there."""
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=ignore_errors)
    elif os.path.exists(path):
        os.remove(path)


def atomic_write(path, write):
    """Call write(temp_path), then rename temp_path to path. Returns path."""
    temp = partial_name(path)
    remove_path(temp)
    try:
        write(temp)
        os.replace(temp, path)
    except BaseException:
        remove_path(temp, ignore_errors=True)
        raise
    return path


def write_text(path, text):
    def write(temp):
        with open(temp, "w", encoding="utf-8") as handle:
            handle.write(text)

    return atomic_write(path, write)


def write_json(path, data):
    return write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_yaml(path, data):
    import yaml

    return write_text(path, yaml.safe_dump(data, sort_keys=False))


def save_actions(actions, path):
    """actions.npy: the label names in label order, as the spec's np.save(ACTIONS) writes them."""

    def write(temp):
        with open(temp, "wb") as handle:
            np.save(handle, np.array(actions))

    return atomic_write(path, write)


def require_writable(folder, command):
    """Refuse at once, before any converting or scoring, when folder cannot take a new file."""
    try:
        handle, probe = tempfile.mkstemp(prefix=".signtrain_probe_", dir=folder)
        os.close(handle)
        os.remove(probe)
    except OSError as error:
        raise PermissionError(f"cannot write into {folder!r} ({error.strerror or error}), where {command} writes its "
                              f"result; nothing was done. Make it writable (chmod u+w {folder!r}) or copy the run "
                              f"folder to a disk you can write to and run it there") from None
