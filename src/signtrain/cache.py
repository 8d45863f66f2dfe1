"""Reading thousands of small frame files fast: in parallel, and once.

10 signs x 30 sequences x 30 frames are 9,000 `.npy` files; opening them one by one is the slowest
part of a run on many laptops (Windows and its virus scanner above all). Here the sequence folders
are read by a pool of threads, and what was read is kept in one packed file beside the data,
`<data>/.signtrain_cache.npz` (the loader ignores dot-names, so it is never taken for an action).

Each cached sequence carries a signature of its folder: every file's name, size and modification
time. A sequence is taken from the cache only when its folder's signature is unchanged; a new,
edited, renamed or deleted frame makes it read again from the frames. The cache holds float32
frames (what training uses) and the reasons unusable sequences were skipped, never pickles, and is
written to a temp name and renamed. Where the data folder is read-only, nothing is cached.
"""

import hashlib
import json
import os
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np

CACHE_FILE = ".signtrain_cache.npz"
CACHE_VERSION = 1


# A file changed twice within the file system's timestamp granularity (a few ms on Linux, 2 s on
# FAT) can keep its size and time: folders touched this recently are read but not cached (git's
# "racy" rule), so an entry is only trusted when any later change would show in the signature.
RACY_SECONDS = 3


def signature(sequence_dir, sequence_length):
    """(digest of the folder's file names, sizes and modification times, newest time in ns)."""
    entries = []
    try:
        with os.scandir(sequence_dir) as scan:
            for entry in scan:
                stat = entry.stat()
                entries.append((entry.name, stat.st_size, stat.st_mtime_ns, entry.is_dir()))
        newest = max([os.stat(sequence_dir).st_mtime_ns] + [entry[2] for entry in entries])
    except OSError as error:
        return f"unreadable:{error}", time.time_ns()
    entries.sort()
    text = json.dumps([CACHE_VERSION, sequence_length, entries])
    return hashlib.sha256(text.encode()).hexdigest(), newest


def default_workers():
    # File opening waits on the disk and the OS, not the CPU: more threads than cores pay off.
    return min(32, 4 * (os.cpu_count() or 1))


def _read(path):
    """{relative folder: (signature, array or reason)} from a cache file; {} when absent or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as packed:
            index = json.loads(str(packed["index"]))
            if index.get("version") != CACHE_VERSION:
                return {}
            groups = {name: packed[name] for name in packed.files if name.startswith("X_")}
        entries = {}
        for folder, entry in index["entries"].items():
            value = entry["reason"] if "reason" in entry else groups[entry["group"]][entry["row"]]
            entries[folder] = (entry["signature"], value)
        return entries
    except (OSError, ValueError, KeyError, IndexError, TypeError, EOFError, zipfile.BadZipFile):
        return {}  # a damaged cache (an interrupted copy, a sync conflict) is only a slower load


def _write(path, entries):
    """Pack {relative folder: (signature, array or reason)} into one .npz, atomically."""
    groups, index = {}, {}
    for folder, (folder_signature, value) in entries.items():
        if isinstance(value, str):
            index[folder] = {"signature": folder_signature, "reason": value}
        else:
            name = "X_" + "x".join(str(n) for n in value.shape)
            groups.setdefault(name, []).append(value)
            index[folder] = {"signature": folder_signature, "group": name, "row": len(groups[name]) - 1}
    arrays = {name: np.stack(values) for name, values in groups.items()}
    arrays["index"] = np.array(json.dumps({"version": CACHE_VERSION, "entries": index}))
    temp = f"{path}.partial{os.getpid()}.npz"
    try:
        np.savez(temp, **arrays)
        os.replace(temp, path)
    except OSError:
        # Read-only or full data folder: the load worked, only the next one will not be faster.
        if os.path.exists(temp):
            os.remove(temp)


def load_sequences(data_dir, sequence_dirs, load_one, sequence_length, workers=None, use_cache=True):
    """load_one(folder, sequence_length) for every folder, in parallel, reusing unchanged cached ones.

    Returns the results in the order of sequence_dirs.
    """
    # Folders changed less than RACY_SECONDS before this moment are not cached: measured from
    # before anything is looked at, so a change during a long load can never slip under it.
    started = time.time_ns()
    cache_path = os.path.join(data_dir, CACHE_FILE)
    relative = [os.path.relpath(folder, data_dir) for folder in sequence_dirs]
    cached = _read(cache_path) if use_cache else {}
    with ThreadPoolExecutor(workers or default_workers()) as pool:
        signatures = list(pool.map(lambda folder: signature(folder, sequence_length), sequence_dirs))
        results, missing = [None] * len(sequence_dirs), []
        for position, (name, folder_signature) in enumerate(zip(relative, signatures)):
            hit = cached.get(name)
            if hit is not None and hit[0] == folder_signature[0]:
                results[position] = hit[1]
            else:
                missing.append(position)
        loaded = pool.map(lambda position: load_one(sequence_dirs[position], sequence_length), missing)
        for position, value in zip(missing, loaded):
            results[position] = value
    if use_cache and missing:
        # Entries of folders this call did not ask for (other actions) stay; they are checked when used.
        entries = {name: entry for name, entry in cached.items() if os.path.isdir(os.path.join(data_dir, name))}
        # Cached only when the folder did not change while it was read and is not too fresh to tell.
        settled = started - RACY_SECONDS * 10**9
        for position in missing:
            digest, newest = signatures[position]
            if newest < settled and signature(sequence_dirs[position], sequence_length)[0] == digest:
                entries[relative[position]] = (digest, results[position])
            else:
                entries.pop(relative[position], None)
        if entries.keys() != cached.keys() or any(entries[name][0] != cached[name][0] for name in entries):
            _write(cache_path, entries)
    return results
