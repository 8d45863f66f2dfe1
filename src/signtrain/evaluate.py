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
