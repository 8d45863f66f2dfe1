"""The cache folder beside the data, `<data>/.signtrain_cache/`: numpy's own files, switched atomically.

One plain `.npy` of float32 rows per frame shape (e.g. `X_30x1662`: every 30 x 1662 sequence),
opened with `np.load(mmap_mode="r")`, and `index.json`: per sequence folder its signature and either
the reason it is unusable or its group, row and the row's CRC. A new cache (a Generation) is written
as new files under a name of its own; renaming its index into place is the one step that switches
readers to it, and the files of the index it replaced are removed after. What goes in and when it
is believed is signtrain.data.cache's business.
"""

import json
import os
import re
import socket
import time
import uuid
import zlib

import numpy as np

CACHE_DIR = ".signtrain_cache"
INDEX_FILE = "index.json"
CACHE_VERSION = 2
EARLIER_CACHE = ".signtrain_cache.npz"  # the single packed file of earlier versions: removed when a cache is written
# Files no index names (a writer killed halfway, or a race of two writers) untouched this long are removed.
LEFTOVER_SECONDS = 3600


def _new_stem(cache_dir):
    # Host, process and a unique tail: workers of a multi-machine run may write the same shared folder
    # at once, and one process writes one generation after another (time_ns ticks 15 ms on Windows).
    return os.path.join(cache_dir, f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:12]}")


def _written_by_a_live_process(name):
    """A file of a generation a process of this machine is still writing (named host-pid-id.*)."""
    match = re.match(r"(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]{12}\.", name)
    if match is None or match["host"] != socket.gethostname():
        return False
    try:
        os.kill(int(match["pid"]), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists (another user's) or cannot tell: keep its files
    return True


def _valid_entry(name, entry):
    """An index entry as Generation.add writes it: a reason (with its CRC) or a group, row and CRC."""
    if not (isinstance(name, str) and isinstance(entry, dict) and isinstance(entry.get("signature"), str)
            and _is_int(entry.get("crc"))):
        return False
    if "reason" in entry:
        return entry.keys() == {"signature", "reason", "crc"} and isinstance(entry["reason"], str)
    return (entry.keys() == {"signature", "group", "row", "crc"} and isinstance(entry["group"], str)
            and _is_int(entry["row"]) and entry["row"] >= 0)


def _valid_group(group):
    return (isinstance(group, dict) and isinstance(group.get("file"), str)
            and group["file"] == os.path.basename(group["file"]) and group["file"] not in ("", ".", "..", INDEX_FILE)
            and _is_int(group.get("rows")) and group["rows"] >= 0)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def read_index(cache_dir):
    """(entries, groups): {relative folder: entry}, {group: {"file", "rows"}}, only what is well formed
    (a folder whose entry is not is read again from its frames); ({}, {}) when absent or unusable."""
    try:
        with open(os.path.join(cache_dir, INDEX_FILE), encoding="utf-8") as handle:
            index = json.load(handle)
        if not isinstance(index, dict) or index.get("version") != CACHE_VERSION:
            return {}, {}
        entries, groups = index["entries"], index["groups"]
        if not isinstance(entries, dict) or not isinstance(groups, dict):
            return {}, {}
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
        return {}, {}  # a damaged cache (an interrupted copy, a sync conflict) is only a slower load
    groups = {name: group for name, group in groups.items() if _valid_group(group)}
    return {name: entry for name, entry in entries.items() if _valid_entry(name, entry)}, groups


def open_group(cache_dir, group, groups):
    """A read-only memory map of one group's rows (e.g. "X_30x1662": every sequence of 30 x 1662), from
    the file `groups` (an index read earlier, or a generation just written) names: never the index
    read again, which another process may have switched meanwhile."""
    if group not in groups:
        raise ValueError(f"{cache_dir} has no {group} rows; delete the folder (it is only a cache)")
    rows = np.load(os.path.join(cache_dir, groups[group]["file"]), mmap_mode="r", allow_pickle=False)
    if rows.dtype != np.float32 or rows.ndim != 3 or len(rows) != groups[group]["rows"]:
        raise ValueError(f"{cache_dir}: {groups[group]['file']} is not what its index says; delete the folder "
                         f"(it is only a cache)")
    return rows


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


def crc(value):
    return zlib.crc32(np.ascontiguousarray(value, np.float32).data)


def crc_text(reason):
    return zlib.crc32(reason.encode("utf-8"))


def open_maps(cache_dir, groups, required=False):
    """{group: memory map} of every group that opens as its index says (the others: their rows are
    read again); required: every group must open, else a ValueError (another process replaced them)."""
    maps = {}
    for group in groups:
        try:
            maps[group] = open_group(cache_dir, group, groups)
        except (OSError, ValueError, KeyError, TypeError, EOFError):
            if required:
                raise ValueError(f"{cache_dir} changed while it was read (another signtrain packing the same "
                                 f"folder?); run again once that one has finished") from None
    return maps


def stored_value(entry, maps):
    """An entry's reason or row (a copy: no view keeps a file mapped) when its CRC holds, else None."""
    if "reason" in entry:
        return entry["reason"] if entry["crc"] == crc_text(entry["reason"]) else None
    value = copy_row(maps, entry)
    return value if value is not None and entry["crc"] == crc(value) else None


def read(cache_dir):
    """{relative folder: (signature, reason or array)} of every entry, as stored (for tests and tools)."""
    entries, groups = read_index(cache_dir)
    maps = open_maps(cache_dir, groups)
    rows = {name: (entry.get("signature"), entry["reason"] if "reason" in entry else copy_row(maps, entry))
            for name, entry in entries.items()}
    return {name: row for name, row in rows.items() if row[1] is not None}


class Generation:
    """A new cache: rows added group by group (to disk every `chunk` rows, so a streamed pack never
    holds the data in memory), then committed: one file per group and index.json renamed into place."""

    def __init__(self, cache_dir, chunk=256):
        self.cache_dir, self.stem, self.chunk = cache_dir, _new_stem(cache_dir), chunk
        self.entries, self.rows, self.buffers, self.parts, self.written = {}, {}, {}, {}, 0

    def add(self, name, digest, value):
        """Record one folder's reason or rows; returns what load_dataset gets: the reason or (group, row)."""
        if isinstance(value, str):
            self.entries[name] = {"signature": digest, "reason": value, "crc": crc_text(value)}
            return value
        value = np.ascontiguousarray(value, np.float32)
        group = "X_" + "x".join(str(n) for n in value.shape)
        row = self.rows.get(group, 0)
        self.rows[group], self.written = row + 1, self.written + value.nbytes
        self.buffers.setdefault(group, []).append(value)
        self.entries[name] = {"signature": digest, "group": group, "row": row, "crc": crc(value)}
        if len(self.buffers[group]) >= self.chunk:
            self._flush(group)
        return group, row

    def _flush(self, group):
        os.makedirs(self.cache_dir, exist_ok=True)
        part = f"{self.stem}.{group}.part{len(self.parts.get(group, []))}.npy"
        self.parts.setdefault(group, []).append(part)
        np.save(part, np.stack(self.buffers.pop(group)))

    def _joined(self, group):
        """One .npy of the group's parts: numpy's header, then each part's rows appended with plain
        writes (a full disk is an OSError; through a memory map it would be a SIGBUS)."""
        parts, final = self.parts[group], f"{self.stem}.{group}.npy"
        if len(parts) == 1:
            os.replace(parts[0], final)
            return final
        shape = (self.rows[group], *(int(n) for n in group[2:].split("x")))
        with open(f"{final}.joining", "wb") as out:
            np.lib.format.write_array_header_2_0(out, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                                                       "fortran_order": False, "shape": shape})
            for part in parts:
                out.write(np.load(part, allow_pickle=False).tobytes())  # one part (<= chunk rows) in memory
                os.remove(part)
        os.replace(f"{final}.joining", final)
        return final

    def commit(self):
        for group in list(self.buffers):
            self._flush(group)
        os.makedirs(self.cache_dir, exist_ok=True)
        groups = {group: {"file": os.path.basename(self._joined(group)), "rows": count}
                  for group, count in self.rows.items()}
        earlier = {entry.get("file") for entry in read_index(self.cache_dir)[1].values()}
        index = f"{self.stem}.index.json"
        with open(index, "w", encoding="utf-8") as handle:
            json.dump({"version": CACHE_VERSION, "entries": self.entries, "groups": groups}, handle)
        os.replace(index, os.path.join(self.cache_dir, INDEX_FILE))  # the switch: readers see old or new
        self._remove_unused(earlier, {entry["file"] for entry in groups.values()})
        return groups

    def _remove_unused(self, earlier, used):
        """The files of the index replaced, leftovers nobody touched for LEFTOVER_SECONDS and the
        earlier versions' packed file; a file still mapped elsewhere (Windows) stays until next time."""
        old = time.time() - LEFTOVER_SECONDS
        for name in os.listdir(self.cache_dir):
            path = os.path.join(self.cache_dir, name)
            try:
                if name != INDEX_FILE and name not in used and (name in earlier or (
                        os.path.getmtime(path) < old and not _written_by_a_live_process(name))):
                    os.remove(path)
            except OSError:
                pass
        _remove_quietly(os.path.join(os.path.dirname(self.cache_dir), EARLIER_CACHE))

    def discard(self):
        """Remove what this generation wrote (an error halfway); the cache folder too when left empty."""
        for name in os.listdir(self.cache_dir) if os.path.isdir(self.cache_dir) else []:
            if os.path.join(self.cache_dir, name).startswith(self.stem):
                _remove_quietly(os.path.join(self.cache_dir, name))
        try:
            os.rmdir(self.cache_dir)
        except OSError:
            pass


def write(cache_dir, kept, maps, fresh):
    """A new cache of the kept entries (rows copied from the maps chunk by chunk, only where their CRC
    holds) and the fresh {relative folder: (signature, reason or array)}. Best effort: a read-only or
    full data folder keeps the old cache (the load worked, only the next one will not be faster)."""
    generation = Generation(cache_dir)
    try:
        for name, entry in kept.items():
            value = stored_value(entry, maps)
            if value is not None:
                generation.add(name, entry["signature"], value)
        for name, (digest, value) in fresh.items():
            generation.add(name, digest, value)
        maps.clear()  # no map keeps the replaced files open (Windows cannot remove a mapped file)
        generation.commit()
    except Exception:  # noqa: BLE001 - whatever went wrong, the data set itself was read
        generation.discard()
    except BaseException:  # Ctrl-C: nothing partial left, and the interrupt goes on
        generation.discard()
        raise


def copy_row(maps, entry):
    try:
        return np.array(maps[entry["group"]][entry["row"]])
    except (KeyError, IndexError, TypeError, ValueError, OSError):
        return None
