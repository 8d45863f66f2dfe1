"""Identical sequences ("twins"): a take copied into another folder, another take number or another
recording is the same sequence. The test split must hold no row whose twin is trained on, or the
test accuracy says "100%" about rows the model has seen. Twins are found by the bytes of their
frames, CHUNK_ROWS rows at a time (X may be a memory map of data bigger than memory).
"""

import hashlib

import numpy as np

CHUNK_ROWS = 256


def digests(X):
    """The sha1 of each row's frames (float32 bytes, as loaded)."""
    out = []
    for begin in range(0, len(X), CHUNK_ROWS):
        out += [hashlib.sha1(sequence.tobytes()).digest() for sequence in np.ascontiguousarray(X[begin:begin + CHUNK_ROWS])]
    return out


def groups(row_digests):
    """One group number per row: the index of the first row with the same frames (its own index if none)."""
    first = {}
    return np.array([first.setdefault(digest, row) for row, digest in enumerate(row_digests)], np.int64)


def fingerprint(row_digests, rows):
    """One sha1 (hex) of the given rows' frames, in name order: what args.yaml keeps of a recording so
    that a resumed run or an export knows it reads the same takes, wherever the folder moved."""
    return hashlib.sha1(b"".join(row_digests[row] for row in rows)).hexdigest()


def twin_lists(group):
    """[[row, row, ...]] of the rows that have a twin, each list in row order."""
    members = {}
    for row, first in enumerate(group):
        members.setdefault(int(first), []).append(row)
    return [rows for rows in members.values() if len(rows) > 1]


def keep_apart(train_rows, test_rows, group):
    """(train rows without any twin of a test row, the rows left out). The test rows stay as drawn,
    so the spec's split is unchanged where nothing is duplicated; the training order is kept."""
    train_rows = np.asarray(train_rows, dtype=np.int64)
    tested = set(np.asarray(group)[np.asarray(test_rows, dtype=np.int64)].tolist())
    twin_of_test = np.isin(np.asarray(group)[train_rows], list(tested))
    return train_rows[~twin_of_test], train_rows[twin_of_test]


def same_recordings(group, recording, recording_names):
    """[(name, name)] of recordings whose takes are all twins of another recording's."""
    recording = np.asarray(recording)
    takes = [set(np.asarray(group)[recording == index].tolist()) for index in range(len(recording_names))]
    return [(recording_names[a], recording_names[b]) for a in range(len(takes)) for b in range(len(takes))
            if a != b and takes[a] and takes[a] <= takes[b] and (a < b or takes[a] != takes[b])]
