"""What a run's numbers say: metrics and plots of the test split, and the run's self-diagnosis.

evaluate  accuracy, confusion matrix, Wilson intervals, plots; a model scored on another recording
diagnose  the run's numbers checked against ml/troubleshooting_training.md
"""

from signtrain.report import diagnose, evaluate

__all__ = ["diagnose", "evaluate"]
