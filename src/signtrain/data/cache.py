"""Reading thousands of small frame files fast: in parallel, and once.

10 signs x 30 sequences x 30 frames are 9,000 `.npy` files; opening them one by one is the slowest
part of a run on many laptops (Windows and its virus scanner above all). Here the sequence folders
are read by a pool of threads, and what was read is kept in a folder beside the data,
`<data>/.signtrain_cache/` (the loader ignores dot-names, so it is never taken for an action; its
files: signtrain.data.cachefolder).

Each cached sequence carries a signature of its folder (every file's name, size and modification
time) and a CRC of its row. A sequence is taken from the cache only when its folder's signature is
unchanged, its row's CRC holds, and its first and last frames, read again, equal the cached ones; a
new, edited, renamed or deleted frame makes it read again from the frames. The cache holds float32
frames (what training uses) and the reasons unusable sequences were skipped, never pickles. Where
the data folder is read-only, nothing is cached.
"""

import errno
import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from signtrain import config
from signtrain.data import cachefolder

# A file changed twice within the file system's timestamp granularity (a few ms on Linux, 2 s on
# FAT) can keep its size and time: folders touched this recently are read but not cached (git's
# "racy" rule), so an entry is only trusted when any later change would show in the signature.
RACY_SECONDS = 3
UNSETTLED = "unsettled"  # signature of a folder packed for this run but too fresh to trust next time


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
    text = json.dumps([cachefolder.CACHE_VERSION, sequence_length, entries])
    return hashlib.sha256(text.encode()).hexdigest(), newest


def default_workers():
    # File opening waits on the disk and the OS, not the CPU: more threads than cores pay off.
    return min(32, 4 * (os.cpu_count() or 1))


def matches_frames(value, folder, sequence_length):
    """A cached sequence is believed only where it can be the folder's frames now: a finite float32
    (length, width) array whose first and last frames equal those files read again. (The signature
    already covers names, sizes and modification times; this catches a cache holding other arrays.)"""
    if (not isinstance(value, np.ndarray) or value.ndim != 2 or value.shape[0] != sequence_length
            or value.dtype != np.float32 or not np.isfinite(value).all()
            or np.abs(value).max() > config.MAX_ABS_VALUE):  # a cache written before that bound existed
        return False
    try:
        for index in (0, sequence_length - 1):
            frame = np.load(os.path.join(folder, f"{index}.npy"), allow_pickle=False)
            if frame.shape != value.shape[1:] or not np.array_equal(np.asarray(frame, np.float32), value[index]):
                return False
    except (OSError, ValueError, EOFError):
        return False
    return True


def _cached_value(entry, maps, folder, sequence_length):
    """The cached reason or row (a copy: no view keeps a file mapped) when it can be believed, else None."""
    value = cachefolder.stored_value(entry, maps)  # None where its CRC does not hold
    if value is None or isinstance(value, str) or matches_frames(value, folder, sequence_length):
        return value
    return None


def load_sequences(data_dir, sequence_dirs, load_one, sequence_length, workers=None, use_cache=True):
    """load_one(folder, sequence_length) for every folder, in parallel, reusing unchanged cached ones.

    Returns the results in the order of sequence_dirs.
    """
    # Folders changed less than RACY_SECONDS before this moment are not cached: measured from
    # before anything is looked at, so a change during a long load can never slip under it.
    settled = time.time_ns() - RACY_SECONDS * 10**9
    cache_dir = os.path.join(data_dir, cachefolder.CACHE_DIR)
    relative = [os.path.relpath(folder, data_dir) for folder in sequence_dirs]
    entries, groups = cachefolder.read_index(cache_dir) if use_cache else ({}, {})
    maps = cachefolder.open_maps(cache_dir, groups)
    with ThreadPoolExecutor(workers or default_workers()) as pool:
        signatures = list(pool.map(lambda folder: signature(folder, sequence_length), sequence_dirs))

        def cached(position):  # a cached reason is reported as it is; a cached row is checked first
            entry = entries.get(relative[position])
            if entry is None or entry.get("signature") != signatures[position][0]:
                return None
            return _cached_value(entry, maps, sequence_dirs[position], sequence_length)

        results = list(pool.map(cached, range(len(sequence_dirs))))
        missing = [position for position, value in enumerate(results) if value is None]
        for position, value in zip(missing, pool.map(lambda p: load_one(sequence_dirs[p], sequence_length), missing)):
            results[position] = value
    if use_cache and missing:
        # Cached only when the folder did not change while it was read and is not too fresh to tell.
        fresh = {relative[p]: (signatures[p][0], results[p]) for p in missing
                 if signatures[p][1] < settled and signature(sequence_dirs[p], sequence_length)[0] == signatures[p][0]}
        # Entries of folders this call did not ask for (other actions) stay; they are checked when used.
        asked, read = set(relative), set(missing)
        kept = {name: entry for name, entry in entries.items()
                if name not in asked and os.path.isdir(os.path.join(data_dir, name))}
        kept.update({relative[p]: entries[relative[p]] for p in range(len(relative)) if p not in read
                     and relative[p] in entries})
        if fresh or kept.keys() != entries.keys():
            cachefolder.write(cache_dir, kept, maps, fresh)
    return results


# --- Streaming: data sets bigger than memory --------------------------------------------------
# Each group of the cache is one plain .npy, so it can be memory-mapped: the operating system
# pages rows in as training reads them and drops them again, whatever the data's size.

def _packed_already(cache_dir, entries, groups, relative, signatures, folders, sequence_length):
    """The results pack() would return, when the cache holds exactly these folders' rows, unchanged
    and in this order (a second streamed run on the same data); else None."""
    results, rows = [], {}
    for name, (digest, _) in zip(relative, signatures):
        entry = entries.get(name)
        if entry is None or entry.get("signature") != digest:
            return None
        if "reason" in entry:
            if cachefolder.stored_value(entry, {}) is None:
                return None
            results.append(entry["reason"])
            continue
        if entry["row"] != rows.get(entry["group"], 0):
            return None
        results.append((entry["group"], entry["row"]))
        rows[entry["group"]] = entry["row"] + 1
    maps = cachefolder.open_maps(cache_dir, groups)
    if any(group not in maps or len(maps[group]) != count for group, count in rows.items()):
        return None
    for folder, name, result in zip(folders, relative, results):
        if not isinstance(result, str) and _cached_value(entries[name], maps, folder, sequence_length) is None:
            return None  # packed again: the rows that do not match are read from their frames
    return maps, results


def _pack_chunk(generation, pool, cached, chunk, load_one, sequence_length, settled):
    """Add one chunk of (relative name, folder, (digest, newest)) to the generation: unchanged rows
    from the old cache, the others read from their frames. Returns their results."""
    entries, maps = cached
    values = [None] * len(chunk)
    for position, (name, folder, (digest, _)) in enumerate(chunk):
        entry = entries.get(name)
        if entry is not None and entry.get("signature") == digest:
            values[position] = _cached_value(entry, maps, folder, sequence_length)
    missing = [position for position, value in enumerate(values) if value is None]
    for position, value in zip(missing, pool.map(lambda p: load_one(chunk[p][1], sequence_length), missing)):
        values[position] = value
    results, read = [], set(missing)
    for position, ((name, folder, (digest, newest)), value) in enumerate(zip(chunk, values)):
        if position in read and not (newest < settled and signature(folder, sequence_length)[0] == digest):
            digest = UNSETTLED  # packed for this run; read again next time
        results.append(generation.add(name, digest, value))
    return results


def _pack_error(cache_dir, data_dir, error, generation, total, earlier):
    """The ValueError for a pack that could not be written, with the fix for its cause.

    generation: what was written so far, of `total` sequence folders; earlier: the old cache's bytes.
    """
    # Estimated from the sequences packed so far: the parts and the joined file (twice the data) and
    # the old cache, until the switch.
    size = 2 * generation.written / max(sum(generation.rows.values()), 1) * total + earlier
    needed = (f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB") + \
        f" for {total} sequences while packing"
    if error.errno == errno.ENOSPC:
        return ValueError(f"--stream keeps the sequences in {cache_dir}, and the disk is full: it needs about "
                          f"{needed}. Free space there, or copy {data_dir!r} to a disk with room.")
    if isinstance(error, PermissionError):
        return ValueError(f"--stream keeps the sequences in {cache_dir} and could not write it ({error}). Make "
                          f"{data_dir!r} writable (or copy it somewhere writable); if another signtrain or a "
                          f"notebook has the file open, close it first.")
    return ValueError(f"--stream keeps the sequences in {cache_dir} and could not write it ({error}). Check "
                      f"that {data_dir!r} is writable and has room (about {needed}).")


def pack(data_dir, sequence_dirs, load_one, sequence_length, workers=None, chunk=256):
    """load_sequences for data bigger than memory: every sequence goes into the cache, chunk folders
    at a time, and is never held in memory with the others.

    Where the cache holds exactly these folders, unchanged and in this order, it is used as it is.
    Otherwise a new cache is written (new files, switched to when complete): unchanged folders
    copied from the old one (memory-mapped), the others read from their frames; only the folders
    asked for are kept. Returns ({group: read-only memory map of its rows}, per folder: the reason it
    is unusable, or (group, row)): the maps are of this pack's own files, whatever another process
    writes next. Raises ValueError where it cannot be written (the rows must live somewhere on disk).
    """
    settled = time.time_ns() - RACY_SECONDS * 10**9
    cache_dir = os.path.join(data_dir, cachefolder.CACHE_DIR)
    relative = [os.path.relpath(folder, data_dir) for folder in sequence_dirs]
    entries, groups = cachefolder.read_index(cache_dir)
    with ThreadPoolExecutor(workers or default_workers()) as pool:
        signatures = list(pool.map(lambda folder: signature(folder, sequence_length), sequence_dirs))
        unchanged = _packed_already(cache_dir, entries, groups, relative, signatures, sequence_dirs, sequence_length)
        if unchanged is not None:
            return unchanged
        generation, maps = cachefolder.Generation(cache_dir, chunk), cachefolder.open_maps(cache_dir, groups)
        earlier = sum(rows.nbytes for rows in maps.values())
        folders = list(zip(relative, sequence_dirs, signatures))
        try:
            results = []
            for begin in range(0, len(folders), chunk):
                results += _pack_chunk(generation, pool, (entries, maps), folders[begin:begin + chunk], load_one,
                                       sequence_length, settled)
            maps.clear()  # the old files' maps closed before they are replaced
            written = generation.commit()
        except OSError as error:
            maps.clear()
            generation.discard()
            raise _pack_error(cache_dir, data_dir, error, generation, len(sequence_dirs), earlier) from None
        except BaseException:  # Ctrl-C, MemoryError: no partial file is left behind
            maps.clear()
            generation.discard()
            raise
    # Opened at once: a later pack by another process removes these files (a map stays valid).
    return cachefolder.open_maps(cache_dir, written, required=True), results
