"""The data doctor: `signtrain check --data DIR`, and the same checks at the start of `train`.

It reads the tree once with the training loader, then looks at what a model cannot fix: skipped
sequences, body parts MediaPipe did not see, frozen takes, exact duplicates, class balance.
"""

import numpy as np

from signtrain import config
from signtrain.data import dataset as data, twins

PARTS = ("pose", "face", "left_hand", "right_hand")


# Rows looked at together: X may be a memory map of data bigger than memory (train --stream).
CHUNK_ROWS = 256


def _missing_frames(X):
    """Per sequence and part: frames where the block is all zeros (MediaPipe did not detect it)."""
    return np.stack([np.sum(np.all(X[..., config.block_slice(part)] == 0, axis=-1), axis=1) for part in PARTS], axis=1)


def _sequence_traits(X):
    """Per sequence: which hand signs (share of frames each is seen), mirroring, distance to the camera."""
    left_seen = np.mean(np.any(X[..., config.block_slice("left_hand")] != 0, axis=-1), axis=1)
    right_seen = np.mean(np.any(X[..., config.block_slice("right_hand")] != 0, axis=-1), axis=1)
    pose = X[..., config.block_slice("pose")].reshape(*X.shape[:2], 33, 4)
    seen = np.any(pose != 0, axis=(-1, -2))
    # Unmirrored, the person's left shoulder (11) is on the image's right: larger x than 12.
    flipped = np.where(seen, pose[..., 11, 0] < pose[..., 12, 0], False)
    mirrored = flipped.sum(axis=1) > 0.5 * np.maximum(seen.sum(axis=1), 1)
    width = np.where(seen, np.abs(pose[..., 11, 0] - pose[..., 12, 0]), np.nan)
    with np.errstate(all="ignore"):
        shoulder_width = np.nanmedian(width, axis=1)
    return left_seen, right_seen, mirrored, shoulder_width


def _per_sequence(X, contract):
    """Everything summarize needs from the frames, one value per sequence, CHUNK_ROWS rows at a time."""
    n = len(X)
    frozen = np.zeros(n, bool)
    # Frame counts, summed per action later: the shares come out exactly as one mean over all frames.
    missing, no_hand = np.zeros((n, len(PARTS)), np.int64), np.zeros(n, np.int64)
    left_seen, right_seen = np.zeros(n), np.zeros(n)
    mirrored, shoulder_width = np.zeros(n, bool), np.full(n, np.nan, X.dtype)  # the frames' precision, as before
    for begin in range(0, n, CHUNK_ROWS):
        chunk = np.array(X[begin:begin + CHUNK_ROWS])  # a copy: aligned, whatever the file's layout
        rows = slice(begin, begin + len(chunk))
        frozen[rows] = np.all(chunk == chunk[:, :1], axis=(1, 2))
        # Body-part statistics need the contract's layout; other layouts (--any-layout) get counts only.
        if contract:
            missing[rows] = _missing_frames(chunk)
            no_hand[rows] = np.sum(np.all(chunk[..., config.block_slice("left_hand")] == 0, axis=-1)
                                   & np.all(chunk[..., config.block_slice("right_hand")] == 0, axis=-1), axis=1)
            left_seen[rows], right_seen[rows], mirrored[rows], shoulder_width[rows] = _sequence_traits(chunk)
    return frozen, missing, no_hand, left_seen, right_seen, mirrored, shoulder_width


def summarize(dataset):
    """Per-action table and the problems found, as plain data (goes into metrics.json)."""
    contract = dataset.num_features == config.NUM_FEATURES and not dataset.layout_problem
    frozen_rows, missing, no_hand, left_seen, right_seen, mirrored, shoulder_width = _per_sequence(dataset.X, contract)
    place = [f"{action}/{name}" for action, name in dataset.sequences]
    twin_rows = twins.twin_lists(dataset.twin_group)
    duplicates = [[place[row] for row in rows] for rows in twin_rows]
    frozen = [place[row] for row in np.flatnonzero(frozen_rows)]
    actions = {}
    for label, action in enumerate(dataset.actions):
        mask = dataset.y == label
        usable = int(mask.sum())
        frames = usable * dataset.X.shape[1]
        skipped = [s for s in dataset.skipped if s.get("sign", s["action"]) == action]  # a recording's own spelling
        actions[action] = {
            "usable": usable,
            "skipped": len(skipped),
            "found": usable + len(skipped),
            "missing_frames_share": ({part: float(missing[mask, i].sum() / frames) if usable else 0.0
                                      for i, part in enumerate(PARTS)} if contract else {}),
            "no_hand_share": float(no_hand[mask].sum() / frames) if contract and usable else 0.0,
            # Sequences signed mainly with one hand (seen in 30% more of the frames than the other).
            "left_hand_sequences": int(np.sum(left_seen[mask] > right_seen[mask] + 0.3)),
            "right_hand_sequences": int(np.sum(right_seen[mask] > left_seen[mask] + 0.3)),
            "frozen": [place[row] for row in np.flatnonzero(frozen_rows & mask)],
        }
    widths = shoulder_width[np.isfinite(shoulder_width)]
    return {
        "actions": actions,
        "skipped_sequences": dataset.skipped,
        "ignored": dataset.notes,
        "frozen_sequences": frozen,
        "duplicate_sequences": duplicates,
        "num_features": dataset.num_features,
        "layout_problem": dataset.layout_problem,
        "mirrored_sequences": int(mirrored.sum()),
        "shoulder_width": ({"p5": float(np.percentile(widths, 5)), "median": float(np.median(widths)),
                            "p95": float(np.percentile(widths, 95))} if len(widths) else None),
        "problems": _problems(dataset, actions, frozen, duplicates, twin_rows),
    }


def _problems(dataset, actions, frozen, duplicates, twin_rows):
    """[{severity, message, fix}]: "error" stops training, "warning" does not."""
    problems = []

    def add(severity, message, fix):
        problems.append({"severity": severity, "message": message, "fix": fix})

    if len(dataset.actions) < 2:
        add("error", f"only one sign ({dataset.actions[0]}): a classifier needs at least 2",
            "record a second sign, or check that --data points at the folder that holds all the sign folders")
    try:
        data.split_indices(dataset.y)
    except ValueError as error:
        add("error", str(error).split(". ")[0], "record more sequences per sign, or train on fewer signs (--actions)")
    if dataset.skipped:
        reasons = sorted({s["reason"].split(" (")[0] for s in dataset.skipped})
        add("warning", f"{len(dataset.skipped)} sequences skipped ({'; '.join(reasons[:3])})",
            "re-record the listed sequences (or delete them) so every take has frames 0..29")
    counts = [entry["usable"] for entry in actions.values()]
    if max(counts) > 1.5 * min(counts):
        add("warning", f"unbalanced: {min(counts)} to {max(counts)} usable sequences per sign",
            "record the signs with fewer sequences until all have about the same number")
    for action, entry in actions.items():
        shares = entry["missing_frames_share"]
        if not shares:  # not the contract's layout: no body parts to look at
            continue
        if shares["pose"] > 0.2:
            add("warning", f"{action}: no person detected in {shares['pose']:.0%} of frames",
                "stand fully in view, with light on the face and body")
        if shares["left_hand"] > 0.9 and shares["right_hand"] > 0.9:
            add("warning", f"{action}: no hand detected in over 90% of frames",
                "keep the hands inside the picture and well lit while signing")
    if frozen:
        add("warning", f"{len(frozen)} frozen sequences (all 30 frames identical): {', '.join(frozen[:5])}",
            "the camera or MediaPipe froze while recording: re-record them")
    if duplicates:
        labels = [set(dataset.y[rows].tolist()) for rows in twin_rows]
        across = sum(len(signs) > 1 for signs in labels)
        add("error" if across else "warning",
            f"{len(duplicates)} groups of identical sequences" + (f", {across} of them under different signs" if across else "")
            + f": {'; '.join(' = '.join(group) for group in duplicates[:3])}",
            "a sequence filed under two signs teaches the model nothing: delete the wrong copy" if across else
            "copied takes: delete the copies. Until then a copy is never trained on when its twin is in the test split "
            "(it is left out of training), so the test accuracy stays honest")
    return problems


def errors(summary):
    """The problems that stop training."""
    return [problem for problem in summary["problems"] if problem["severity"] == "error"]


def verdict(summary):
    return "problems: cannot train" if errors(summary) else ("ready to train, with warnings" if summary["problems"] else "ready to train")


def format_report(summary):
    """The table a person reads: one row per action, then the problems and their fixes."""
    lines = []
    width = max(12, *(len(action) for action in summary["actions"]))
    header = f"{'action':<{width}} found usable skipped frozen  no-pose no-face no-left no-right"
    lines += [header, "-" * len(header)]
    for action, entry in summary["actions"].items():
        shares = entry["missing_frames_share"]
        lines.append(
            f"{action:<{width}} {entry['found']:>5} {entry['usable']:>6} {entry['skipped']:>8} {len(entry['frozen']):>6}  "
            + " ".join(f"{shares[part]:>7.0%}" if shares else f"{'n/a':>7}" for part in PARTS)
        )
    lines.append("(no-...: share of frames where MediaPipe did not detect that part)")
    for skip in summary["skipped_sequences"]:
        where = f"{skip['recording']}: " if skip.get("recording") else ""
        lines.append(f"skipped {where}{skip['action']}/{skip['sequence']}: {skip['reason']}")
    for note in summary["ignored"]:
        lines.append(note)
    for problem in summary["problems"]:
        lines.append(f"{problem['severity']}: {problem['message']}\n  fix: {problem['fix']}")
    lines.append(f"verdict: {verdict(summary)}")
    return "\n".join(lines)
