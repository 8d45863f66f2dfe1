"""After training, the run checks its own numbers against ml/troubleshooting_training.md.

Each rule has a code that is also a section of that document (a test keeps the two in step). A
rule looks only at what the run wrote (metrics, the per-epoch history, the data check), so it can
be re-run on any finished run folder and tested on numbers built to show it.
"""

import math
import statistics

# The validation swing: sd of the validation accuracy over the last SWING_EPOCHS epochs. Measured in
# bench/results/stability.md: spec recipe without exact BatchNorm statistics 0.1-0.2 on the demo
# data and lujamanandhar, with them a few hundredths. Above UNSTABLE_SWING the epoch that
# EarlyStopping kept is a draw from that noise.
SWING_EPOCHS = 10
UNSTABLE_SWING = 0.10

DOC = "ml/troubleshooting_training.md"
# Accuracy on a person the model never saw, measured on public recordings by strangers
# (bench/results/real_people.md, part (a): 4 signs, trained on two people, tested on a third).
NEW_PERSON_MEASURED = {"raw": 0.447, "relative": 0.719}
NEW_PERSON_RESULTS = "bench/results/real_people.md"


def _finite(values):
    return [v for v in values if v is not None and not math.isnan(v)]


def validation_swing(val_accuracy):
    """sd of the validation accuracy over the last SWING_EPOCHS epochs (0 with fewer than 2)."""
    tail = _finite(val_accuracy)[-SWING_EPOCHS:]
    return statistics.pstdev(tail) if len(tail) >= 2 else 0.0


def _unstable_training(metrics, history):
    val = _finite(history.get("val_categorical_accuracy", []))
    if len(val) < SWING_EPOCHS:
        return
    swing = validation_swing(val)
    if swing > UNSTABLE_SWING:
        tail = val[-SWING_EPOCHS:]
        jump = max(abs(after - before) for before, after in zip(tail, tail[1:]))
        cause = (" (trained with --no-precise-bn: train without it)" if metrics.precise_bn is False else "")
        yield (f"validation accuracy swings from epoch to epoch: sd {swing:.2f} over the last {SWING_EPOCHS} epochs, "
               f"jumps of up to {jump * 100:.0f} points, {min(tail):.0%} to {max(tail):.0%}{cause}",
               {"swing": swing, "largest_jump": jump, "last_epochs": tail, "threshold": UNSTABLE_SWING,
                "precise_bn": metrics.precise_bn})


def _low_accuracy(metrics, history):
    accuracy = metrics.test_accuracy
    if accuracy < 0.8:
        low, high = metrics.test_accuracy_ci95 or (accuracy, accuracy)
        yield (f"test accuracy {accuracy:.0%} (95% interval {low:.0%}-{high:.0%}), below 80%",
               {"test_accuracy": accuracy, "n_test": metrics.n_test})


def _confused_pair(metrics, history):
    matrix, actions = metrics.confusion_matrix, metrics.actions
    for true, row in enumerate(matrix):
        support = sum(row)
        for predicted, count in enumerate(row):
            if predicted != true and count >= 2 and count >= support / 3:
                yield (f"{actions[predicted]} and {actions[true]}: {count} of {support} test sequences of "
                       f"{actions[true]} predicted as {actions[predicted]}",
                       {"true": actions[true], "predicted": actions[predicted], "count": count, "support": support})


def _overfitting(metrics, history):
    train = history.get("categorical_accuracy", [])
    if not train or metrics.best_epoch is None:
        return
    train_accuracy = train[min(metrics.best_epoch, len(train)) - 1]
    gap = train_accuracy - metrics.test_accuracy
    if gap > 0.15:
        yield (f"train {train_accuracy:.0%}, test {metrics.test_accuracy:.0%}: gap {gap * 100:.0f} points",
               {"train_accuracy": train_accuracy, "test_accuracy": metrics.test_accuracy})


def _not_learning(metrics, history):
    chance = 1 / len(metrics.actions)
    val = _finite(history.get("val_categorical_accuracy", []))
    train = _finite(history.get("categorical_accuracy", []))
    if len(val) >= 20 and max(val) <= max(1.5 * chance, chance + 0.05):
        yield (f"validation accuracy never above {max(val):.0%} in {len(val)} epochs (chance is {chance:.0%})",
               {"best_val_accuracy": max(val), "epochs": len(val), "chance": chance})
    elif train and train[-1] < 0.6 and metrics.test_accuracy < 0.6:
        yield (f"train {train[-1]:.0%} and test {metrics.test_accuracy:.0%} accuracy: both low",
               {"train_accuracy": train[-1], "test_accuracy": metrics.test_accuracy})


def _one_class(metrics, history):
    matrix, actions = metrics.confusion_matrix, metrics.actions
    total = sum(sum(row) for row in matrix)
    if len(actions) < 3 or not total:
        return
    predicted = [sum(row[j] for row in matrix) for j in range(len(actions))]
    top = max(range(len(actions)), key=predicted.__getitem__)
    if predicted[top] >= 0.7 * total:
        yield (f"{predicted[top]} of {total} test sequences predicted as {actions[top]}",
               {"action": actions[top], "predicted": predicted[top], "total": total})


def _nan_loss(metrics, history):
    for key in ("loss", "val_loss"):
        values = history.get(key, [])
        bad = [epoch + 1 for epoch, value in enumerate(values) if value is None or not math.isfinite(value)]
        if bad:
            yield f"{key} is NaN or inf from epoch {bad[0]}", {"metric": key, "first_epoch": bad[0]}


def _hands_missing(metrics, history):
    for action, entry in (metrics.data_check or {}).get("actions", {}).items():
        if entry.get("no_hand_share", 0) > 0.5:
            yield (f"{entry['no_hand_share']:.0%} of frames of {action} have no hand at all",
                   {"action": action, "no_hand_share": entry["no_hand_share"]})


def _mixed_handedness(metrics, history):
    for action, entry in (metrics.data_check or {}).get("actions", {}).items():
        left, right = entry.get("left_hand_sequences", 0), entry.get("right_hand_sequences", 0)
        usable = entry.get("usable", 0)
        if usable and min(left, right) >= max(2, 0.2 * usable):
            yield (f"{action}: {left} sequences signed with the left hand, {right} with the right",
                   {"action": action, "left": left, "right": right})


def _mirrored_camera(metrics, history):
    check = metrics.data_check or {}
    mirrored = check.get("mirrored_sequences", 0)
    total = sum(entry.get("usable", 0) for entry in check.get("actions", {}).values())
    if total and mirrored:
        share = mirrored / total
        if share < 0.9:
            yield (f"{mirrored} of {total} sequences were recorded mirrored (selfie view), the others not",
                   {"mirrored": mirrored, "total": total})
        else:
            yield (f"all {total} sequences are mirrored (selfie view): the live app must mirror its frames too",
                   {"mirrored": mirrored, "total": total})


def _distance_sessions(metrics, history):
    width = (metrics.data_check or {}).get("shoulder_width")
    if width and width["p5"] > 0 and width["p95"] / width["p5"] > 1.5:
        yield (f"shoulder width in the image ranges {width['p5']:.2f} to {width['p95']:.2f} (5th-95th "
               f"percentile): sequences recorded at different distances from the camera", dict(width))


def _one_recording(metrics, history):
    recordings = metrics.recordings
    if recordings is None or len(recordings) > 1:
        return
    features = metrics.features or "raw"
    measured = NEW_PERSON_MEASURED.get(features)
    number = (f"; on public recordings by other people this project measured {measured:.0%} on a person the model "
              f"never saw with --features {features} ({NEW_PERSON_RESULTS})" if measured is not None else "")
    advice = "record a second person and train on both (--data A --data B)" + (
        ", with --features relative" if features == "raw" else "")
    yield (f"trained on one recording (one person or one sitting): the test accuracy says how the model does on "
           f"that person, not on the next one{number}. To know and to improve it: {advice}, and measure with "
           f"signtrain cv --by recording",
           {"recordings": len(recordings), "features": features, "measured_on_a_new_person": measured})


# code: (severity, spec row or problem, rule). The order is the document's.
RULES = {
    "LOW_ACCURACY": ("warning", _low_accuracy),
    "CONFUSED_PAIR": ("warning", _confused_pair),
    "OVERFITTING": ("warning", _overfitting),
    "NOT_LEARNING": ("error", _not_learning),
    "ONE_CLASS": ("error", _one_class),
    "NAN_LOSS": ("error", _nan_loss),
    "UNSTABLE_TRAINING": ("warning", _unstable_training),
    "HANDS_MISSING": ("warning", _hands_missing),
    "MIXED_HANDEDNESS": ("warning", _mixed_handedness),
    "MIRRORED_CAMERA": ("info", _mirrored_camera),
    "DISTANCE_SESSIONS": ("warning", _distance_sessions),
    "ONE_RECORDING": ("info", _one_recording),
}
# Raised during training rather than found afterwards; documented under the same code.
OUT_OF_MEMORY = "OUT_OF_MEMORY"
NAN_LOSS = "NAN_LOSS"  # also found afterwards (RULES): training now stops at the first NaN step


def section(code):
    return f"{DOC}#{code.lower()}"


def diagnose(metrics, history):
    """[{code, severity, message, evidence, section}] for every rule that applies to a run's
    signtrain.report.metrics.Metrics and its per-epoch history."""
    found = []
    for code, (severity, rule) in RULES.items():
        for message, evidence in rule(metrics, history):
            found.append({"code": code, "severity": severity, "message": message, "evidence": evidence,
                          "section": section(code)})
    return found


def format_diagnostics(found):
    if not found:
        return "diagnostics: found nothing to worry about"
    lines = ["diagnostics:"]
    for item in found:
        lines.append(f"  {item['severity']:<7} {item['code']}: {item['message']}  (see {item['section']})")
    return "\n".join(lines)
