"""What a run's numbers say: metrics and plots of the test split, and the run's self-diagnosis.

evaluate  accuracy, confusion matrix, Wilson intervals, plots; a model scored on another recording
diagnose  the run's numbers checked against ml/troubleshooting_training.md
metrics   metrics.json as one record (Metrics): written by a run, read by its summary, diagnose, export
"""

from signtrain.report import diagnose, evaluate, metrics

__all__ = ["diagnose", "evaluate", "metrics"]
