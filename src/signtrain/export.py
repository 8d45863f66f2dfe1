"""Writing a run's files so that nothing the user had is ever half-written or overwritten.

Every file is written under a temporary name in the same folder and renamed into place: an
interrupted run leaves either the old file or the new one, never a truncated model.
"""

import json
import os
import shutil

import numpy as np


def partial_name(path):
    folder, name = os.path.split(path)
    stem, extension = os.path.splitext(name)
    # Keras picks the format from the extension, so the temp name keeps it.
    return os.path.join(folder, f".{stem}.partial{extension}")


def atomic_write(path, write):
    """Call write(temp_path), then rename temp_path to path. Returns path."""
    temp = partial_name(path)
    if os.path.isdir(temp):
        shutil.rmtree(temp)
    elif os.path.exists(temp):
        os.remove(temp)
    try:
        write(temp)
        os.replace(temp, path)
    except BaseException:
        if os.path.isdir(temp):
            shutil.rmtree(temp, ignore_errors=True)
        elif os.path.exists(temp):
            os.remove(temp)
        raise
    return path


def save_h5(model, path):
    """The live app's format. Keras 3 warns that HDF5 is legacy; it still is what the app loads."""
    return atomic_write(path, model.save)


def save_actions(actions, path):
    """actions.npy: the label names in label order, as the spec's np.save(ACTIONS) writes them."""

    def write(temp):
        with open(temp, "wb") as handle:
            np.save(handle, np.array(actions))

    return atomic_write(path, write)


def export_savedmodel(model, path):
    """A TensorFlow SavedModel. Keras 3's model.save(dir) raises; model.export(dir) is the way."""
    if os.path.exists(path):
        raise FileExistsError(f"{path} exists; refusing to overwrite an earlier export")
    return atomic_write(path, lambda temp: model.export(temp, verbose=False))


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
