"""Numbers and plots from a trained model's predictions on the held-out test split.

Plot functions take data and a path, save, close the figure and return the path.
"""

import math

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix, precision_recall_fscore_support


def wilson_interval(successes, total, z=1.96):
    """95% Wilson score interval of a proportion: 29/30 reads as 0.97 (0.83-0.99)."""
    if total == 0:
        return (0.0, 1.0)
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def classification_metrics(y_true, y_pred, actions):
    """per_class {action: {precision, recall, f1, support}}, the confusion matrix and the report text."""
    labels = list(range(len(actions)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    per_class = {
        action: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, action in enumerate(actions)
    }
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    report = classification_report(
        y_true, y_pred, labels=labels, target_names=list(actions), zero_division=0, digits=3
    )
    return per_class, matrix, report


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no window, works on servers and in CI
    import matplotlib.pyplot as plt

    return plt


def plot_confusion_matrix(matrix, actions, path, title="Confusion matrix (test split)"):
    import seaborn as sns

    plt = _pyplot()
    size = max(6, 0.7 * len(actions) + 2)
    figure, axes = plt.subplots(figsize=(size, size * 0.85))
    sns.heatmap(
        np.asarray(matrix),
        annot=True,
        fmt="d",
        cmap="Blues",
        xticklabels=actions,
        yticklabels=actions,
        cbar=False,
        ax=axes,
    )
    axes.set_xlabel("Predicted")
    axes.set_ylabel("True")
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_history(history, path):
    """history: {"categorical_accuracy": [...], "val_categorical_accuracy": [...], "loss": ..., "val_loss": ...}."""
    plt = _pyplot()
    figure, (accuracy_axes, loss_axes) = plt.subplots(1, 2, figsize=(12, 4.5))
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    for key, label in (("categorical_accuracy", "train"), ("val_categorical_accuracy", "validation")):
        if key in history:
            accuracy_axes.plot(epochs, history[key], label=label)
    accuracy_axes.set_title("Accuracy")
    accuracy_axes.set_xlabel("Epoch")
    accuracy_axes.set_ylim(0, 1.02)
    accuracy_axes.legend()
    for key, label in (("loss", "train"), ("val_loss", "validation")):
        if key in history:
            loss_axes.plot(epochs, history[key], label=label)
    loss_axes.set_title("Loss")
    loss_axes.set_xlabel("Epoch")
    loss_axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


# --- a model on another recording -------------------------------------------------------------


def evaluate_recording(model, model_actions, recording, trained=None):
    """Accuracy of a trained model on a recording from load_recording; with `trained` (the training
    data's signtrain.data.person.Profile) what differs in this recording that can make the model fail."""
    from signtrain.data import person

    dataset, matched = recording.dataset, recording.matched
    label_of = {action: index for index, action in enumerate(model_actions)}
    y_true = np.array([label_of[matched[dataset.actions[label]]] for label in dataset.y])
    y_pred = model.predict(dataset.X, verbose=0).argmax(axis=1)
    correct = int(np.sum(y_pred == y_true))
    per_class, matrix, _ = classification_metrics(y_true, y_pred, list(model_actions))
    scored = person.profile(dataset.X)
    return {
        "data": recording.data,
        "matched": matched,
        "unmatched_folders": recording.unmatched_folders,
        "signs_without_data": [a for a in model_actions if a not in matched.values()],
        "n": int(len(y_true)),
        "accuracy": correct / len(y_true),
        "accuracy_ci95": list(wilson_interval(correct, len(y_true))),
        "recall": {action: per_class[action]["recall"] for action in matched.values()},
        "confusion_matrix": matrix.tolist(),
        "skipped_sequences": dataset.skipped,
        "failing_signs": person.failing_signs({action: per_class[action]["recall"] for action in matched.values()}),
        "profile": scored.to_json() if scored else None,
        "differences": person.differences(scored, trained),
    }


def format_recording_result(result):
    low, high = result["accuracy_ci95"]
    lines = ["matched: " + ", ".join(f"{folder} -> {action}" for folder, action in result["matched"].items())]
    if result["unmatched_folders"]:
        lines.append(f"not matched (ignored): {', '.join(result['unmatched_folders'])}")
    if result["signs_without_data"]:
        lines.append(f"signs of the model with no data here: {', '.join(result['signs_without_data'])}")
    lines.append("recall: " + ", ".join(f"{action} {recall:.0%}" for action, recall in result["recall"].items()))
    lines.append(f"accuracy on {result['data']}: {result['accuracy']:.1%} of {result['n']} sequences "
                 f"(95% interval {low:.0%}-{high:.0%})")
    if result.get("failing_signs"):
        lines.append(f"signs that fail on this recording (recall): {', '.join(result['failing_signs'])}")
    for line in result.get("differences", []):
        lines.append(f"why it may fail: {line}")
    return "\n".join(lines)
