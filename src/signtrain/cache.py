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

import errno
import hashlib
import json
import os
import socket
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


def _temp_stem(path):
    # Host and process: workers of a multi-machine run may pack the same shared folder at once.
    return f"{path}.partial{socket.gethostname()}-{os.getpid()}"


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
    temp = f"{_temp_stem(path)}.npz"
    try:
        np.savez(temp, **arrays)
        os.replace(temp, path)
    except OSError:
        # Read-only or full data folder: the load worked, only the next one will not be faster.
        if os.path.exists(temp):
            os.remove(temp)


def matches_frames(value, folder, sequence_length):
    """A cached sequence is believed only where it can be the folder's frames now: a finite float32
    (length, width) array whose first and last frames equal those files read again. (The signature
    already covers names, sizes and modification times; this catches a cache holding other arrays.)"""
    if (not isinstance(value, np.ndarray) or value.ndim != 2 or value.shape[0] != sequence_length
            or value.dtype != np.float32 or not np.isfinite(value).all()):
        return False
    try:
        for index in (0, sequence_length - 1):
            frame = np.load(os.path.join(folder, f"{index}.npy"), allow_pickle=False)
            if frame.shape != value.shape[1:] or not np.array_equal(np.asarray(frame, np.float32), value[index]):
                return False
    except (OSError, ValueError, EOFError):
        return False
    return True


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

        def usable(position):  # a cached reason is reported as it is; a cached array is checked first
            hit = cached.get(relative[position])
            return hit is not None and hit[0] == signatures[position][0] and (
                isinstance(hit[1], str) or matches_frames(hit[1], sequence_dirs[position], sequence_length))

        for position, hit_ok in enumerate(pool.map(usable, range(len(sequence_dirs)))):
            if hit_ok:
                results[position] = cached[relative[position]][1]
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


# --- Streaming: data sets bigger than memory --------------------------------------------------
# The packed cache is an uncompressed .npz (np.savez stores members as they are), so each group of
# sequences in it is one contiguous .npy inside the file, and can be memory-mapped: the operating
# system pages rows in as training reads them and drops them again, whatever the data's size.

UNSETTLED = "unsettled"  # signature of a folder packed for this run but too fresh to trust next time
_LOCAL_HEADER = 30  # a zip local file header's fixed part; its name and extra field follow


def open_group(path, name):
    """A read-only np.memmap of the group `name` (e.g. "X_30x1662") of a packed cache file."""
    with zipfile.ZipFile(path) as packed:
        info = packed.getinfo(f"{name}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"{path}: {name} is compressed and cannot be streamed; delete the file (it is only a cache)")
    with open(path, "rb") as stream:
        stream.seek(info.header_offset)
        local = stream.read(_LOCAL_HEADER)
        name_length, extra_length = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
        stream.seek(info.header_offset + _LOCAL_HEADER + name_length + extra_length)
        version = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(stream)
        offset = stream.tell()
    if fortran_order:
        raise ValueError(f"{path}: {name} is not in C order; delete the file (it is only a cache)")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)


def _read_index(path):
    """{relative folder: index entry} of a cache file without reading its arrays; {} when unusable."""
    try:
        with np.load(path, allow_pickle=False) as packed:
            index = json.loads(str(packed["index"]))
        return index["entries"] if index.get("version") == CACHE_VERSION else {}
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
        return {}


def _packed_already(cache_path, entries, relative, signatures, folders, sequence_length):
    """The results pack() would return, when the cache holds exactly these folders' rows, unchanged
    and in this order (a second streamed run on the same data); else None."""
    results, rows = [], {}
    for name, (digest, _) in zip(relative, signatures):
        entry = entries.get(name)
        if entry is None or entry["signature"] != digest:
            return None
        if "reason" in entry:
            results.append(entry["reason"])
            continue
        if entry["row"] != rows.get(entry["group"], 0):
            return None
        results.append((entry["group"], entry["row"]))
        rows[entry["group"]] = entry["row"] + 1
    try:
        groups = {group: open_group(cache_path, group) for group in rows}
        if any(len(groups[group]) != count for group, count in rows.items()):
            return None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None
    for folder, result in zip(folders, results):
        if not isinstance(result, str) and not matches_frames(np.asarray(groups[result[0]][result[1]]), folder,
                                                                 sequence_length):
            return None  # packed again: the rows that do not match are read from their frames
    return results


def _pack_error(cache_path, data_dir, error, written, packed, total):
    """The ValueError for a pack that could not be written, with the fix for its cause.

    written: bytes of the `packed` sequences written so far, of `total` sequence folders.
    """
    # Estimated from the sequences packed so far; twice: the temp files and the packed file, until the rename.
    size = 2 * written / max(packed, 1) * total
    needed = (f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB") + \
        f" for {total} sequences while packing"
    if error.errno == errno.ENOSPC:
        return ValueError(f"--stream keeps the sequences in {cache_path}, and the disk is full: it needs about "
                          f"{needed}. Free space there, or copy {data_dir!r} to a disk with room.")
    if isinstance(error, PermissionError):
        return ValueError(f"--stream keeps the sequences in {cache_path} and could not write it ({error}). Make "
                          f"{data_dir!r} writable (or copy it somewhere writable); if another signtrain or a "
                          f"notebook has the file open, close it first.")
    return ValueError(f"--stream keeps the sequences in {cache_path} and could not write it ({error}). Check "
                      f"that {data_dir!r} is writable and has room (about {needed}).")


def pack(data_dir, sequence_dirs, load_one, sequence_length, workers=None, chunk=256):
    """load_sequences for data bigger than memory: every sequence goes into the packed cache,
    chunk folders at a time, and is never held in memory with the others.

    Where the cache holds exactly these folders, unchanged and in this order, it is used as it is.
    Otherwise a new cache is written (temp files, renamed when complete): unchanged folders copied
    from the old one (memory-mapped), the others read from their frames; only the folders asked
    for are kept. Returns (path of the cache, per folder: the reason it is unusable, or (group,
    row)). Raises ValueError where it cannot be written (the rows must live somewhere on disk).
    """
    started = time.time_ns()
    cache_path = os.path.join(data_dir, CACHE_FILE)
    relative = [os.path.relpath(folder, data_dir) for folder in sequence_dirs]
    old_entries, old_groups = _read_index(cache_path), {}
    with ThreadPoolExecutor(workers or default_workers()) as pool:
        signatures = list(pool.map(lambda folder: signature(folder, sequence_length), sequence_dirs))
        unchanged = _packed_already(cache_path, old_entries, relative, signatures, sequence_dirs, sequence_length)
        if unchanged is not None:
            return cache_path, unchanged
        temp = _temp_stem(cache_path)
        raw_files, rows, results, index, written = {}, {}, [], {}, 0
        settled = started - RACY_SECONDS * 10**9
        try:
            for begin in range(0, len(sequence_dirs), chunk):
                folders = sequence_dirs[begin:begin + chunk]
                values, missing = [None] * len(folders), []
                for position, name in enumerate(relative[begin:begin + chunk]):
                    entry = old_entries.get(name)
                    if entry is None or entry["signature"] != signatures[begin + position][0]:
                        missing.append(position)
                    elif "reason" in entry:
                        values[position] = entry["reason"]
                    else:
                        if entry["group"] not in old_groups:
                            old_groups[entry["group"]] = open_group(cache_path, entry["group"])
                        # A copy: no view may keep the old file mapped when it is replaced.
                        values[position] = np.array(old_groups[entry["group"]][entry["row"]])
                        if not matches_frames(values[position], folders[position], sequence_length):
                            missing.append(position)
                for position, value in zip(missing, pool.map(lambda p: load_one(folders[p], sequence_length), missing)):
                    values[position] = value
                for position, value in enumerate(values):
                    name, (digest, newest) = relative[begin + position], signatures[begin + position]
                    if position in missing and not (newest < settled and signature(
                            folders[position], sequence_length)[0] == digest):
                        digest = UNSETTLED  # packed for this run; read again next time
                    if isinstance(value, str):
                        index[name] = {"signature": digest, "reason": value}
                        results.append(value)
                        continue
                    value = np.ascontiguousarray(value, np.float32)
                    group, written = "X_" + "x".join(str(n) for n in value.shape), written + value.nbytes
                    if group not in raw_files:
                        raw_files[group] = open(f"{temp}.{group}.raw", "wb")
                        rows[group] = 0
                    raw_files[group].write(value.tobytes())
                    index[name] = {"signature": digest, "group": group, "row": rows[group]}
                    results.append((group, rows[group]))
                    rows[group] += 1
            old_groups.clear()  # the old file's maps closed before it is replaced
            for raw in raw_files.values():
                raw.close()
            with zipfile.ZipFile(f"{temp}.npz", "w", zipfile.ZIP_STORED, allowZip64=True) as packed:
                for group, count in rows.items():
                    shape = (count, *(int(n) for n in group[2:].split("x")))
                    with packed.open(f"{group}.npy", "w", force_zip64=True) as member, \
                            open(f"{temp}.{group}.raw", "rb") as raw:
                        np.lib.format.write_array_header_2_0(
                            member, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                                     "fortran_order": False, "shape": shape})
                        while block := raw.read(1 << 24):
                            member.write(block)
                with packed.open("index.npy", "w") as member:
                    np.save(member, np.array(json.dumps({"version": CACHE_VERSION, "entries": index})))
            os.replace(f"{temp}.npz", cache_path)
        except OSError as error:
            raise _pack_error(cache_path, data_dir, error, written, sum(rows.values()), len(sequence_dirs)) from None
        finally:
            for raw in raw_files.values():
                raw.close()
            for leftover in [f"{temp}.{group}.raw" for group in raw_files] + [f"{temp}.npz"]:
                if os.path.exists(leftover):
                    os.remove(leftover)
    return cache_path, results
