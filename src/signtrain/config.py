"""Constants of the data contract and the spec's training defaults.

Everything here comes from the user's spec. The live translator feeds the model exactly this
layout, so none of it may change silently: tests pin every number below.
"""

# The spec's 10 signs, in the spec's order (the label index of each is its position here).
SPEC_ACTIONS = (
    "Hello",
    "Thank_You",
    "Help",
    "Yes",
    "No",
    "Please",
    "Sorry",
    "I_Love_You",
    "Stop",
    "More",
)

NUM_SEQUENCES = 30  # sequences recorded per sign by the spec's collection script
SEQUENCE_LENGTH = 30  # frames per sequence

# One frame = MediaPipe Holistic keypoints concatenated in this order, never reordered.
POSE_LANDMARKS, POSE_VALUES = 33, 4  # x, y, z, visibility
FACE_LANDMARKS, FACE_VALUES = 468, 3
HAND_LANDMARKS, HAND_VALUES = 21, 3

POSE_SIZE = POSE_LANDMARKS * POSE_VALUES  # 132
FACE_SIZE = FACE_LANDMARKS * FACE_VALUES  # 1404
HAND_SIZE = HAND_LANDMARKS * HAND_VALUES  # 63

# (name, start, stop) of each block inside one 1662-long frame.
BLOCKS = (
    ("pose", 0, POSE_SIZE),
    ("face", POSE_SIZE, POSE_SIZE + FACE_SIZE),
    ("left_hand", POSE_SIZE + FACE_SIZE, POSE_SIZE + FACE_SIZE + HAND_SIZE),
    ("right_hand", POSE_SIZE + FACE_SIZE + HAND_SIZE, POSE_SIZE + FACE_SIZE + 2 * HAND_SIZE),
)
NUM_FEATURES = BLOCKS[-1][2]  # 1662


def block_slice(name):
    """Slice of a frame that holds one block, e.g. frame[..., block_slice("right_hand")]."""
    for block_name, start, stop in BLOCKS:
        if block_name == name:
            return slice(start, stop)
    raise ValueError(f"unknown block {name!r}; expected one of {[b[0] for b in BLOCKS]}")


# MediaPipe's keypoints are image fractions (x, y in [0, 1] on the image; a landmark outside it a
# little beyond) with z of the same scale and visibility in [0, 1]: the largest |value| in nine
# public recordings (../shared/realdata) is 3.7. A frame with a value beyond this bound (2,700 times
# that: room for any camera and for test data that writes indices into frames) is not from a camera
# (a bug in the recording script, a unit mistake): its sequence is skipped like a NaN frame.
# 1e30-sized values would otherwise train a model whose every weight is NaN.
MAX_ABS_VALUE = 1e4

# Training defaults from the spec. The CLI flags override them; nothing else does.
DEFAULT_EPOCHS = 200
# --keep: best (the spec's EarlyStopping with restore_best_weights) or last (every --epochs epoch, the last kept).
KEEP_CHOICES = ("best", "last")
# --recipe: settings set at once (flags given beside it win). "people" is what bench/real_people.py
# measured best on a person the model never saw (bench/results/real_people.md, run 5).
RECIPES = {
    "spec": {},
    "people": {"features": "relative", "hand_dropout": True, "keep": "last", "epochs": 60, "ensemble": 3},
}

# What --recipe people gained in bench/real_people.py (run 5), said once by a run on several recordings without it.
PEOPLE_RECIPE_GAIN = ("on people it never saw, --recipe people scored 80.0% against 71.9% with --features relative "
                      "and 44.7% with these defaults (4 signs, trained on 2 people), 91.9% against 89.0% and 60.2% "
                      "(3 signs, 5 people; bench/results/real_people.md)")


def describe_recipe(name):
    """A recipe as the flags that give the same settings: what the run prints and --help shows."""
    words = []
    for setting, value in RECIPES[name].items():
        flag = "--" + setting.replace("_", "-")
        words.append(flag if value is True else f"{flag} {value}")
    return " ".join(words) or "the spec's settings"

DEFAULT_PATIENCE = 30
DEFAULT_BATCH_SIZE = 16
DEFAULT_SEED = 42
TEST_SIZE = 0.1
VALIDATION_SPLIT = 0.15
MONITOR = "val_categorical_accuracy"
# What EarlyStopping and ModelCheckpoint may watch (--monitor), and which way is better. The spec's is
# MONITOR; val_loss is opt-in (bench/results/stability.md measures both).
MONITOR_MODES = {"val_categorical_accuracy": "max", "val_loss": "min"}

# Architecture from the spec: (units, return_sequences) of each LSTM, then the Dense widths.
LSTM_LAYERS = ((64, True), (128, True), (64, False))
DENSE_UNITS = (64, 32)
DROPOUT_RATE = 0.2
LSTM_ACTIVATION = "tanh"

# Files of a run folder, by the names the live app and other tools rely on.
MODEL_FILE = "action_model.h5"
BEST_MODEL_FILE = "best_model.h5"
ACTIONS_FILE = "actions.npy"
SAVEDMODEL_DIR = "action_model_savedmodel"
# The exports' files (action_model.onnx, action_model.tflite): signtrain.export.formats' table.
# An export ships only when its probabilities on the run's test sequences stay this close to the
# Keras model's (float32 reorderings give ~1e-7) and every top-1 sign is the same.
EXPORT_TOLERANCE = 1e-4
CONFUSION_MATRIX_FILE = "confusion_matrix.png"
HISTORY_PLOT_FILE = "training_history.png"
REPORT_FILE = "classification_report.txt"
RESULTS_FILE = "results.csv"
METRICS_FILE = "metrics.json"
ARGS_FILE = "args.yaml"
LOGS_DIR = "logs"

DEFAULT_RUNS_DIR = "runs/train"

