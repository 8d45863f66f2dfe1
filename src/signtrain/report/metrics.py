"""metrics.json as one record: written by a finished run, read by its summary, diagnose and export.

The file's keys are a contract (README, the live app's users, older runs): each is a field here,
spelled as in the file and in the file's order. A key this version does not know (a newer or a
hand-edited file) is kept in `extra` and written back as it was, so `signtrain export` adding its
table never drops anything. A key an older run lacks reads as its default.
"""

import dataclasses

# Written only when they hold something (the file has had no such key when they did not apply).
_WRITTEN_WHEN_SET = ("h5_keras3_only_because", "ensemble", "exports", "external_test")


@dataclasses.dataclass
class Metrics:
    # The test split, scored by the shipped action_model.h5
    test_accuracy: float = None
    test_accuracy_ci95: list = None  # the 95% Wilson interval
    test_correct: int = None
    test_loss: float = None
    # The fit
    best_val_accuracy: float = None  # of the epoch kept
    best_epoch: int = None  # 1-based
    monitor: str = None
    epochs_run: int = None
    n_train: int = None
    n_val: int = None
    n_test: int = None
    actions: list = dataclasses.field(default_factory=list)
    num_features: int = None
    per_class: dict = dataclasses.field(default_factory=dict)
    confusion_matrix: list = dataclasses.field(default_factory=list)  # rows the true sign
    skipped_sequences: list = dataclasses.field(default_factory=list)
    ignored: list = dataclasses.field(default_factory=list)
    data_check: dict = dataclasses.field(default_factory=dict)  # signtrain.data.check.summarize
    test_sequences: list = dataclasses.field(default_factory=list)  # [sign, sequence] pairs
    reload_max_abs_diff: float = None  # the file's predictions against the model in memory
    train_seconds: float = None
    resumed: bool = False
    seed: int = None
    # The settings that shaped the model
    precise_bn: bool = None
    reshuffle: bool = None
    features: str = "raw"
    hand_dropout: bool = None
    keep: str = None
    recipe: str = None
    ensemble_size: int = None
    recordings: list = None  # one entry per --data recording (signtrain.data.recordings.summary)
    data_profile: dict = None  # signtrain.data.person.Profile of the training rows
    versions: dict = None
    h5_loads_in: list = None
    h5_keras3_only_because: str = None
    ensemble: dict = None
    exports: dict = None  # {format: record} (signtrain.export)
    diagnostics: list = dataclasses.field(default_factory=list)  # signtrain.report.diagnose
    external_test: dict = None  # --test-data scored (signtrain.report.evaluate.evaluate_recording)
    extra: dict = dataclasses.field(default_factory=dict, repr=False)  # keys this version does not know
    file_keys: tuple = dataclasses.field(default=None, repr=False, compare=False)  # read from a file: its keys

    def to_json(self):
        """The file's content. A record read from a file writes that file's keys in its order (an older
        run gains no key it never had), then any field set since; a run's own record writes every key
        but those of _WRITTEN_WHEN_SET that do not apply."""
        fields = [field for field in dataclasses.fields(self) if field.name not in ("extra", "file_keys")]
        content = {field.name: getattr(self, field.name) for field in fields}
        if self.file_keys is None:
            written = {key: value for key, value in content.items()
                       if key not in _WRITTEN_WHEN_SET or value not in (None, "")}
            return dict(written, **self.extra)
        kept = {key: content[key] if key in content else self.extra[key] for key in self.file_keys}
        set_since = {field.name: content[field.name] for field in fields
                     if field.name not in kept and content[field.name] != _default(field)}
        return dict(kept, **set_since)

    @classmethod
    def from_json(cls, content):
        known = {field.name for field in dataclasses.fields(cls)} - {"extra", "file_keys"}
        return cls(**{key: value for key, value in content.items() if key in known},
                   extra={key: value for key, value in content.items() if key not in known},
                   file_keys=tuple(content))


def _default(field):
    return field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
