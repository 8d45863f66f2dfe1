# %% [markdown]
# # Sign-language LSTM: training notebook
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/signtrain/signtrain/blob/main/ml/training_notebook.ipynb)
#
# Trains the 3-layer LSTM that the live translator loads, on your recorded MediaPipe keypoints,
# and hands you `action_model.h5` and `actions.npy`.
#
# **Before you start** (Colab): *Runtime > Change runtime type > T4 GPU*, and put your data on
# Google Drive exactly like this:
#
# ```
# MyDrive/
# └── MP_Data.zip          a zip of your MP_Data folder
#     └── MP_Data/
#         ├── Hello/0/0.npy ... 29/29.npy     one (1662,) array per frame
#         ├── Thank_You/...
#         └── ...
# ```
#
# Then *Runtime > Run all*. Training 300 sequences takes a few minutes on a T4.
#
# Outside Colab the same notebook runs unchanged: it reads the folder named by the environment
# variable `SIGNTRAIN_DATA` (default `MP_Data`) and writes its files to the current folder.
# `SIGNTRAIN_EPOCHS` (default 200) shortens a trial run.
#
# This file is generated from `ml/training_notebook.py` by `make notebook`: edit that file, not
# the `.ipynb`.

# %% [markdown]
# ## 1. Mount Google Drive and extract the data
# On Colab this mounts Drive, copies `MP_Data.zip` and unzips it into `/content` (refusing any zip
# entry that would land outside it). Elsewhere it only finds the data folder.

# %%
import glob
import itertools
import os
import shutil
import sys
import time
import zipfile

IN_COLAB = "COLAB_RELEASE_TAG" in os.environ or "google.colab" in sys.modules
EPOCHS = int(os.environ.get("SIGNTRAIN_EPOCHS", "200"))


# ---- helpers: a safe unzip, the data folder found, earlier outputs kept ----
def safe_extract(zip_path, destination):
    """Unzip, refusing entries with '..' or absolute paths (they could overwrite files anywhere)."""
    destination = os.path.realpath(destination)
    with zipfile.ZipFile(zip_path) as archive:
        for member in archive.namelist():
            if os.path.commonpath([destination, os.path.realpath(os.path.join(destination, member))]) != destination:
                raise ValueError(f"{zip_path} holds the entry {member!r}, which points outside {destination}; "
                                 f"zip the MP_Data folder itself, e.g. `zip -r MP_Data.zip MP_Data`")
        archive.extractall(destination)


def find_mp_data(root):
    """root/MP_Data, or root/<one folder>/MP_Data when the zip was made one level higher."""
    found = [os.path.join(root, "MP_Data")] + sorted(glob.glob(os.path.join(glob.escape(root), "*", "MP_Data")))
    return next((path for path in found if os.path.isdir(path)), None)


def keep_previous(path, previous_root):
    """Move an earlier output into previous_root/signtrain_previous/ under a new name: never overwritten."""
    if os.path.exists(path):
        stem = os.path.join(previous_root, "signtrain_previous", time.strftime("%Y%m%d-%H%M%S_"))
        target = next(f"{stem}{n}_{os.path.basename(path)}" for n in itertools.count(1)
                      if not os.path.exists(f"{stem}{n}_{os.path.basename(path)}"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        print(f"kept the earlier {os.path.basename(path)} as {shutil.move(path, target)}")


if IN_COLAB:
    from google.colab import drive

    drive.mount("/content/drive")
    DRIVE_DIR, OUTPUT_DIR = "/content/drive/MyDrive", "/content"
    if not os.path.exists(os.path.join(DRIVE_DIR, "MP_Data.zip")):
        raise FileNotFoundError(f"{DRIVE_DIR}/MP_Data.zip not found. Upload a zip of your MP_Data folder to the top "
                                f"of 'My Drive' and name it MP_Data.zip, then run this cell again.")
    shutil.copy(os.path.join(DRIVE_DIR, "MP_Data.zip"), "/content/MP_Data.zip")
    safe_extract("/content/MP_Data.zip", "/content")
    DATA_PATH = find_mp_data("/content")
    if DATA_PATH is None:
        raise FileNotFoundError("MP_Data.zip holds no MP_Data/ folder. Zip the folder itself (so that the "
                                "zip contains MP_Data/Hello/0/0.npy ...), upload it again and rerun.")
else:
    DATA_PATH, OUTPUT_DIR = os.environ.get("SIGNTRAIN_DATA", "MP_Data"), os.getcwd()
    if not os.path.isdir(DATA_PATH):
        raise FileNotFoundError(f"data folder {DATA_PATH!r} not found: set SIGNTRAIN_DATA to your MP_Data folder")
print("data:", DATA_PATH)
print("actions found:", sorted(os.listdir(DATA_PATH)))

# %% [markdown]
# ## 2. Imports
# Also checks the runtime: on a GPU, Keras uses the fast cuDNN LSTM kernel, which needs exactly
# what the spec asks for (tanh, sigmoid gates, no unroll, no recurrent dropout).

# %%
import logging

import numpy as np
import tensorflow as tf
from tensorflow.keras.models import Model, Sequential
from tensorflow.keras.layers import Input, LSTM, Dense, Dropout, BatchNormalization
from tensorflow.keras.callbacks import TensorBoard, EarlyStopping, ModelCheckpoint
from tensorflow.keras.utils import to_categorical
from sklearn.model_selection import train_test_split
from sklearn.metrics import confusion_matrix, classification_report
import matplotlib.pyplot as plt
import seaborn as sns

# Keras 3 calls HDF5 "legacy" at every checkpoint; .h5 is what the live app loads, on purpose.
logging.getLogger("absl").addFilter(lambda record: "saving your model as an HDF5 file" not in record.getMessage())
print("TensorFlow", tf.__version__)
print(f"GPU: {tf.config.list_physical_devices('GPU')[0].name}. The LSTM layers below (tanh, no unroll) run on the "
      f"cuDNN kernel." if tf.config.list_physical_devices("GPU") else "WARNING: no GPU in this runtime; training runs "
      "on the CPU (slower, same result). On Colab: Runtime > Change runtime type > T4 GPU.")

# %% [markdown]
# ## 3. Configuration
# The spec's 10 signs. When your folder holds other signs, ACTIONS follows the folder names
# (sorted) and says so. The label of a sign is its position in ACTIONS.
#
# `FEATURES = "raw"` feeds the 1662 recorded values to the LSTM, as the spec does. `"relative"` puts
# fixed layers in front of it (cell 6) that keep what a sign is made of: body and hands relative to
# the shoulders, each hand's shape, a few lip points and the motion. It works much better for a
# person the model never saw (see the project's bench/results/real_people.md); the saved model still
# takes raw frames, so the live app does not change.
#
# For the next person in front of the camera, signtrain's `--recipe people` without its 3-model
# ensemble (CLI only): `FEATURES = "relative"`, `HAND_DROPOUT = True` (while training, a hand zeroed
# over a random span of frames, as MediaPipe loses one), `KEEP_LAST = True` and `EPOCHS = 60` (train
# exactly that long and keep the last weights: validation rows come from the people trained on).

# %%
ACTIONS = np.array([
    'Hello', 'Thank_You', 'Help', 'Yes', 'No',
    'Please', 'Sorry', 'I_Love_You', 'Stop', 'More'
])
NUM_SEQUENCES = 30
SEQUENCE_LENGTH = 30
FEATURES = os.environ.get("SIGNTRAIN_FEATURES", "raw")  # "raw" (the spec's input) or "relative"
HAND_DROPOUT = os.environ.get("SIGNTRAIN_HAND_DROPOUT") == "1"  # off: the spec's training rows as recorded
KEEP_LAST = os.environ.get("SIGNTRAIN_KEEP_LAST") == "1"  # on: no early stop, the last of EPOCHS epochs is kept

found_actions = sorted(name for name in os.listdir(DATA_PATH)
                       if os.path.isdir(os.path.join(DATA_PATH, name)) and not name.startswith(('.', '__')))
if set(found_actions) != set(ACTIONS):
    print(f"NOTICE: {DATA_PATH} holds {found_actions}, not the spec's 10 signs; training on the folders found.")
    ACTIONS = np.array(found_actions)
label_map = {label: num for num, label in enumerate(ACTIONS)}
print(len(ACTIONS), "actions:", list(ACTIONS))

# %% [markdown]
# ## 4. Load and prepare the data
# Every numeric sequence folder of each action is read. A sequence with a missing, unreadable or
# extra frame is skipped and listed: look at the list before you trust the model. The cell stops,
# saying why, where training would go wrong: a sign with no usable sequence, frames of another width
# than the live app's 1662 values, or frames whose blocks are not in MediaPipe's order (pose, face,
# left hand, right hand; another recording script's layout).

# %%
# ---- helpers: one sequence read or refused, the blocks' order measured ----
BLOCK_SIZES = {'pose': 132, 'face': 1404, 'left_hand': 63, 'right_hand': 63}  # the data contract, in order


def read_sequence(sequence_dir):
    """The (30, width) frames of one sequence folder, or why it cannot be used."""
    extra = sorted(int(name[:-4]) for name in os.listdir(sequence_dir)
                   if name.endswith('.npy') and name[:-4].isdecimal() and int(name[:-4]) >= SEQUENCE_LENGTH)
    if extra:
        return f"{len(extra)} extra frames from {extra[0]}.npy: a sequence is 0.npy..{SEQUENCE_LENGTH - 1}.npy"
    window = []
    for frame_num in range(SEQUENCE_LENGTH):
        try:
            frame = np.load(os.path.join(sequence_dir, f"{frame_num}.npy"), allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            return f"frame {frame_num}: unreadable ({error.__class__.__name__}: {str(error)[:80]})"
        if not isinstance(frame, np.ndarray) or frame.ndim != 1 or frame.dtype.kind not in 'iuf':
            return f"frame {frame_num}: not a flat array of numbers"
        if window and frame.shape != window[0].shape:
            return f"frame {frame_num}: {frame.shape[0]} values, frame 0 has {window[0].shape[0]}"
        with np.errstate(over='ignore'):  # keypoints are image fractions near 0-1 (3.7 at most in real recordings)
            if not np.all(np.abs(frame.astype(np.float32)) <= 1e4):  # NaN, inf (1e39 is inf in float32), 1e30
                return f"frame {frame_num}: NaN, inf or a value far beyond what MediaPipe gives"
        window.append(frame)
    return np.array(window, dtype=np.float32)


def layout_fit(frames, order):
    """0..3: how well frames (n, 1662) fit the blocks in this order: pose visibility lies in [0, 1],
    a hand's wrist z is 0, each hand's wrist is next to the same side's pose wrist."""
    ends = dict(zip(order, itertools.accumulate(BLOCK_SIZES[name] for name in order)))
    block = lambda name, width: frames[:, ends[name] - BLOCK_SIZES[name]:ends[name]].reshape(len(frames), -1, width)  # noqa: E731
    pose = block('pose', 4)
    seen = np.any(pose != 0, axis=(1, 2))
    visible = (pose[seen][:, :, 3] >= 0) & (pose[seen][:, :, 3] <= 1)
    fit, wrist_z, same_side = float(np.mean(np.all(visible, axis=1))) if seen.any() else 0.0, [], []
    for hand_name, own, other in (('left_hand', 15, 16), ('right_hand', 16, 15)):
        hand = block(hand_name, 3)
        detected = np.any(hand != 0, axis=(1, 2)) & seen
        if detected.any():
            wrist, body = hand[detected][:, 0], pose[detected][:, :, :2]
            wrist_z.append(np.mean(np.abs(wrist[:, 2]) < 1e-6))
            same_side.append(np.mean(np.linalg.norm(wrist[:, :2] - body[:, own], axis=1)
                                     <= np.linalg.norm(wrist[:, :2] - body[:, other], axis=1)))
    return fit + (float(np.mean(wrist_z)) if wrist_z else 0.5) + (float(np.mean(same_side)) if same_side else 0.5)


# ---- the spec's loading ----
sequences, labels, names, skipped = [], [], [], []
for action in ACTIONS:
    for sequence in sorted((n for n in os.listdir(os.path.join(DATA_PATH, action))
                            if n.isdecimal() and os.path.isdir(os.path.join(DATA_PATH, action, n))), key=int):
        window = read_sequence(os.path.join(DATA_PATH, action, sequence))
        if isinstance(window, str):
            skipped.append((action, sequence, window))
        else:
            sequences.append(window)
            labels.append(label_map[action])
            names.append(sequence)

lengths = [window.shape[1] for window in sequences]
NUM_FEATURES = max(set(lengths), key=lengths.count) if lengths else 0  # 1662 for the data contract
for index in reversed(range(len(sequences))):
    if lengths[index] != NUM_FEATURES:
        skipped.append((ACTIONS[labels[index]], names[index], f"{lengths[index]} values per frame, not {NUM_FEATURES}"))
        del sequences[index], labels[index], names[index]
print(f"skipped {len(skipped)} sequences")
for entry in skipped:
    print("  skipped", *entry)

empty = [str(action) for num, action in enumerate(ACTIONS) if num not in labels]
if empty:
    raise ValueError(f"no usable sequence for {empty} in {DATA_PATH} (no sequence folder 0, 1, ... in them, or "
                     f"the skipped list above says why): record them, or move their folders out of {DATA_PATH}")
example = os.path.join(DATA_PATH, ACTIONS[labels[0]], names[0], '0.npy')
if NUM_FEATURES != 1662:
    raise ValueError(f"frames have {NUM_FEATURES} values, e.g. {example}; the live app feeds 1662 "
                     f"(pose 33x4, face 468x3, left hand 21x3, right hand 21x3). Record with that extract_keypoints.")
X = np.array(sequences, dtype=np.float32)
sample = X.reshape(-1, 1662)[::max(1, X.shape[0] * X.shape[1] // 3000)]
fits = {order: layout_fit(sample, order) for order in itertools.permutations(BLOCK_SIZES)}
if max(fits.values()) - fits[tuple(BLOCK_SIZES)] > 0.3:  # the same margin as signtrain's check
    raise ValueError(f"frames have 1662 values but look like the blocks are in the order {', '.join(max(fits, key=fits.get))}, "
                     f"e.g. {example}; the live app feeds pose, face, left_hand, right_hand. Re-record, or reorder "
                     f"each frame with np.concatenate in that order.")
y = to_categorical(labels, num_classes=len(ACTIONS)).astype(np.float32)
print("X:", X.shape, " y:", y.shape)

# %% [markdown]
# ## 5. Train/test split
# 90% for training (of which 15% are held out for validation), 10% kept aside for the final
# test, stratified so that every sign is in the test split.

# %%
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.1, random_state=42, stratify=y
)
print("train:", X_train.shape[0], " test:", X_test.shape[0])

# %% [markdown]
# ## 6. Build the LSTM model
# The spec's architecture, unchanged: 3 LSTM layers with tanh, each followed by BatchNorm and
# Dropout(0.2), then Dense 64 and 32 (relu) and a softmax over the signs. With
# `FEATURES = "relative"` the fixed front-end below comes first (the same numbers as signtrain's
# `--features relative`, checked by the project's tests). Keras has no division layer: x / |d| is
# UnitNormalization over [K * d, x] (K = 1e4), undone by K.

# %%
# ---- helper: the relative front-end (FEATURES = "relative"), fixed Keras layers ----
from tensorflow.keras.layers import (Add, Concatenate, Cropping1D, GlobalAveragePooling1D, Multiply, ReLU,
                                     RepeatVector, Rescaling, Subtract, UnitNormalization, ZeroPadding1D)

K, EPS = 1e4, 0.1
PARTS = {'pose': (0, 132, 4), 'face': (132, 1536, 3), 'left_hand': (1536, 1599, 3), 'right_hand': (1599, 1662, 3)}
HANDS = ('left_hand', 'right_hand')
POINTS = ([('body', 'pose', p) for p in (0, 11, 12, 13, 14, 15, 16)]  # nose, shoulders, elbows, wrists
          + [('body', 'face', p) for p in (61, 291, 13, 14)]  # mouth corners, inner upper and lower lip
          + [('body', hand, p) for hand in HANDS for p in range(21)]
          + [('shape', hand, p) for hand in HANDS for p in range(1, 21)])
TWIN = {('pose', 11): 12, ('pose', 12): 11, ('pose', 13): 14, ('pose', 14): 13, ('pose', 15): 16, ('pose', 16): 15,
        ('face', 61): 291, ('face', 291): 61}  # mirror image; the nose and the lips' middle stay
at = lambda part, landmark: PARTS[part][0] + landmark * PARTS[part][2]  # noqa: E731


def fixed_dense(kernel, bias=None):
    """A Dense layer used as a constant function: its weights set once, never trained."""
    layer = Dense(kernel.shape[1], use_bias=bias is not None, trainable=False)
    layer.build((None, kernel.shape[0]))
    layer.set_weights([kernel.astype(np.float32)] + ([np.float32(bias)] if bias is not None else []))
    return layer


def divided(inputs, group, hand=None):
    """The group's points relative to the shoulders' midpoint / shoulder width, or to the wrist / hand size."""
    chosen = [p for p in POINTS if p[0] == group and (hand is None or p[1] == hand)]
    centred, scale = np.zeros((1662, 2 * len(chosen))), np.zeros((1662, 3))
    ends = (at('pose', 11), at('pose', 12)) if group == 'body' else (at(hand, 9), at(hand, 0))
    reference = {ends[0]: 0.5, ends[1]: 0.5} if group == 'body' else {ends[1]: 1.0}
    for axis in (0, 1):
        scale[ends[0] + axis, axis], scale[ends[1] + axis, axis] = K, -K
        for index, (_, part, landmark) in enumerate(chosen):
            centred[at(part, landmark) + axis, 2 * index + axis] += 1
            for offset, weight in reference.items():
                centred[offset + axis, 2 * index + axis] -= weight
    joined = Concatenate()([fixed_dense(scale, [0, 0, EPS])(inputs), fixed_dense(centred)(inputs)])
    keep = np.vstack([np.zeros((3, centred.shape[1])), K * np.eye(centred.shape[1])])
    return fixed_dense(keep)(UnitNormalization()(joined))


def relative_front_end(inputs):
    static = Concatenate()([divided(inputs, 'body')] + [divided(inputs, 'shape', hand) for hand in HANDS])
    blocks, needs = np.zeros((1662, 4)), np.zeros((4, 2 * len(POINTS)))
    for index, (start, stop, _) in enumerate(PARTS.values()):
        blocks[start:stop, index] = -K * K
    for index, (group, part, _) in enumerate(POINTS):
        for block in ({'pose', part} if group == 'body' else {part}):
            needs[list(PARTS).index(block), 2 * index:2 * index + 2] = -1
    unseen = ReLU()(fixed_dense(blocks, np.ones(4))(Multiply()([inputs, inputs])))  # 1: the part is all zeros
    mask = ReLU()(fixed_dense(needs, np.ones(needs.shape[1]))(unseen))  # 1: every part a value needs is seen
    static = Multiply()([static, mask])
    previous = lambda tensor: Cropping1D((0, 1))(ZeroPadding1D((1, 0))(tensor))  # noqa: E731
    both = ReLU()(Rescaling(1.0, offset=-1.0)(Add()([mask, previous(mask)])))
    values = Concatenate()([static, Multiply()([Subtract()([static, previous(static)]), both])])
    size, where = 2 * len(POINTS), {point: index for index, point in enumerate(POINTS)}
    mirror = np.zeros((2 * size, 2 * size))
    for index, (group, part, landmark) in enumerate(POINTS):
        twin = ((group, HANDS[1 - HANDS.index(part)], landmark) if part in HANDS
                else (group, part, TWIN.get((part, landmark), landmark)))
        for half in (0, size):
            mirror[half + 2 * where[twin], half + 2 * index] = -1
            mirror[half + 2 * where[twin] + 1, half + 2 * index + 1] = 1
    more_left = GlobalAveragePooling1D()(fixed_dense(np.array([[0], [0], [-K], [K]]))(unseen))
    flip = ReLU(max_value=1.0)(more_left)  # 1 when the left hand is seen in more frames than the right
    flip = RepeatVector(inputs.shape[1])(fixed_dense(np.ones((1, 2 * size)))(flip))
    return Add()([values, Multiply()([Subtract()([fixed_dense(mirror)(values), values]), flip])])


# ---- the model ----
if FEATURES not in ("raw", "relative"):
    raise ValueError(f"FEATURES = {FEATURES!r}: use 'raw' (the spec's input) or 'relative'")
tf.keras.utils.set_random_seed(42)
spec_layers = [
    LSTM(64, return_sequences=True, activation='tanh'),
    BatchNormalization(),
    Dropout(0.2),
    LSTM(128, return_sequences=True, activation='tanh'),
    BatchNormalization(),
    Dropout(0.2),
    LSTM(64, return_sequences=False, activation='tanh'),
    BatchNormalization(),
    Dropout(0.2),
    Dense(64, activation='relu'),
    Dense(32, activation='relu'),
    Dense(len(ACTIONS), activation='softmax')
]
if FEATURES == "raw":
    model = Sequential([Input(shape=(SEQUENCE_LENGTH, NUM_FEATURES))] + spec_layers)
else:  # the same layers after the fixed front-end
    inputs = outputs = Input(shape=(SEQUENCE_LENGTH, NUM_FEATURES))
    for layer in [relative_front_end] + spec_layers:
        outputs = layer(outputs)
    model = Model(inputs, outputs)
model.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['categorical_accuracy'])
model.summary()

# %% [markdown]
# ## 7. Train
# Up to 200 epochs; training stops after 30 epochs without a better validation accuracy and
# keeps the best weights. Watch `val_categorical_accuracy`: it is the number that matters.
#
# Two additions to the spec's `model.fit`, both in the helper block:
# - `PreciseBatchNorm`: in training, BatchNorm normalises with each batch's own statistics;
#   validation, the checkpoint and the live app use its moving averages, which lag far behind
#   weights that change quickly. Validation accuracy then swings from epoch to epoch and the epoch
#   kept is luck. Before each validation the callback sets every BatchNorm layer's mean and variance
#   to the exact statistics of its input over the training rows. No layer or trained weight changes.
#   Take it out of `callbacks` for the spec's plain recipe.
# - `shuffled_batches`: the training rows in batches of 16, in a new order every epoch. The spec's
#   `shuffle=True` draws one order and, once a seed is set (cell 6), repeats it every epoch; with
#   exact statistics and that one order the project measured a worst seed of 76.7% and an sd of 8.2
#   points on its demo data, with a new order every epoch 90.0% and 3.9 (bench/results/stability.md).
#   Validation is the spec's `validation_split=0.15`: the last 15% of X_train.

# %%
# ---- helpers: exact BatchNorm statistics, a new batch order every epoch, hand dropout ----
class PreciseBatchNorm(tf.keras.callbacks.Callback):
    """Exact BatchNorm statistics over `rows` (the training rows) before every validation."""

    def __init__(self, rows):
        super().__init__()
        self.rows = rows

    def on_test_begin(self, logs=None):  # fit calls it after the epoch's last step, before validation
        layers = self.model.layers
        first = next(index for index, layer in enumerate(layers) if isinstance(layer, LSTM))
        hidden = (tf.constant(self.rows) if FEATURES == "raw"  # else the front-end's output feeds the first LSTM
                  else Model(self.model.inputs[0], layers[first].input)(self.rows, training=False))
        for layer in layers[first:]:
            if isinstance(layer, BatchNormalization):
                mean, variance = tf.nn.moments(hidden, axes=list(range(len(hidden.shape) - 1)))
                layer.moving_mean.assign(mean)
                layer.moving_variance.assign(variance)
            hidden = layer(hidden, training=False)


def drop_hands(frames, seed):
    """Each hand of each sequence, with probability 0.5, zeroed over one random span of frames."""
    rows, steps = tf.shape(frames)[0], tf.shape(frames)[1]
    hit_seed, length_seed, start_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    hit = tf.random.stateless_uniform([rows, 2], hit_seed) < 0.5
    length = tf.random.stateless_uniform([rows, 2], length_seed, minval=1, maxval=steps + 1, dtype=tf.int32)
    start = tf.cast(tf.random.stateless_uniform([rows, 2], start_seed) * tf.cast(steps - length + 1, tf.float32),
                    tf.int32)
    step = tf.range(steps)[None, :, None]
    lost = hit[:, None, :] & (step >= start[:, None, :]) & (step < (start + length)[:, None, :])
    hands = tf.repeat(1.0 - tf.cast(lost, frames.dtype), 63, axis=2)  # the left hand's 63 values, the right's
    return tf.concat([frames[..., :1536], frames[..., 1536:] * hands], axis=2)


def shuffled_batches(X_rows, y_rows, batch_size=16, seed=42):
    """(x, y) batches of the rows in a new order every epoch, drawn from the seed; with HAND_DROPOUT a
    new draw of lost hands every epoch too."""
    order = tf.data.Dataset.range(len(X_rows)).shuffle(len(X_rows), seed=seed, reshuffle_each_iteration=True)
    rows = tf.data.Dataset.from_tensors((X_rows, y_rows)).repeat()
    batches = tf.data.Dataset.zip((order.batch(batch_size), rows)).map(
        lambda batch, xy: (tf.gather(xy[0], batch), tf.gather(xy[1], batch)))
    if HAND_DROPOUT:
        draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        batches = tf.data.Dataset.zip((batches, draws)).map(lambda xy, r: (drop_hands(xy[0], tf.stack([r, 0])), xy[1]))
    return batches


# ---- the spec's training ----
early_stop = EarlyStopping(monitor='val_categorical_accuracy', patience=30, restore_best_weights=True, verbose=1)
checkpoint = ModelCheckpoint(os.path.join(OUTPUT_DIR, 'best_model.h5'), monitor='val_categorical_accuracy',
                             save_best_only=True, verbose=1)
tb_callback = TensorBoard(log_dir=os.path.join(OUTPUT_DIR, 'logs'))
for name in ('best_model.h5', 'logs'):
    keep_previous(os.path.join(OUTPUT_DIR, name), OUTPUT_DIR)
if KEEP_LAST:  # every epoch runs, best_model.h5 holds the last
    early_stop.patience, early_stop.restore_best_weights, checkpoint.save_best_only = EPOCHS, False, False
FIT_ROWS = int(len(X_train) * (1 - 0.15))  # validation_split=0.15 validates on the last 15% of X_train
history = model.fit(
    shuffled_batches(X_train[:FIT_ROWS], y_train[:FIT_ROWS], batch_size=16),
    validation_data=(X_train[FIT_ROWS:], y_train[FIT_ROWS:]),
    epochs=EPOCHS,
    callbacks=[early_stop, checkpoint, tb_callback, PreciseBatchNorm(X_train[:FIT_ROWS])],
    verbose=1 if IN_COLAB else 2
)
kept = history.history['val_categorical_accuracy'][-1] if KEEP_LAST else max(history.history['val_categorical_accuracy'])
print(f"{'last' if KEEP_LAST else 'best'} validation accuracy: {kept:.3f}")

# %% [markdown]
# ## 8. Evaluate on the test split
# The best checkpoint, reloaded from disk, on X_test only: sequences the model never saw.
# Look at the confusion matrix: signs that are confused with each other are the ones to re-record.

# %%
best_model = tf.keras.models.load_model(os.path.join(OUTPUT_DIR, 'best_model.h5'))
test_loss, test_accuracy = best_model.evaluate(X_test, y_test, verbose=0)
print(f"Test accuracy: {test_accuracy:.4f}  Test loss: {test_loss:.4f}  ({len(X_test)} test sequences)")

y_true, y_pred = np.argmax(y_test, axis=1), np.argmax(best_model.predict(X_test, verbose=0), axis=1)
print(classification_report(y_true, y_pred, labels=range(len(ACTIONS)), target_names=list(ACTIONS),
                            zero_division=0))
plt.figure(figsize=(10, 8))
sns.heatmap(confusion_matrix(y_true, y_pred, labels=range(len(ACTIONS))), annot=True, fmt='d', cmap='Blues',
            xticklabels=ACTIONS, yticklabels=ACTIONS)
plt.gca().set(xlabel='Predicted', ylabel='True', title='Confusion matrix (test split)')
plt.tight_layout()
keep_previous(os.path.join(OUTPUT_DIR, 'confusion_matrix.png'), OUTPUT_DIR)
plt.savefig(os.path.join(OUTPUT_DIR, 'confusion_matrix.png'), dpi=120)
plt.show()

# %% [markdown]
# ## 9. Training history
# Train and validation curves far apart mean overfitting; both low means the data needs work
# (see `ml/troubleshooting_training.md`).

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
for ax, (title, key) in zip(axes, (('Accuracy', 'categorical_accuracy'), ('Loss', 'loss'))):
    ax.plot(history.history[key], label='train')
    ax.plot(history.history['val_' + key], label='validation')
    ax.set(title=title, xlabel='Epoch')
    ax.legend()
plt.tight_layout()
keep_previous(os.path.join(OUTPUT_DIR, 'training_history.png'), OUTPUT_DIR)
plt.savefig(os.path.join(OUTPUT_DIR, 'training_history.png'), dpi=120)
plt.show()

# %% [markdown]
# ## 10. Save and download
# `action_model.h5` and `actions.npy` are what the live app loads. The SavedModel comes from
# `model.export` (Keras 3's `model.save(dir)` no longer writes one). On Colab the files are also
# copied to Drive. An earlier file of the same name is moved to `signtrain_previous/`, never overwritten.

# %%
OUTPUTS = ('action_model.h5', 'action_model_savedmodel', 'actions.npy', 'confusion_matrix.png', 'training_history.png')
for name in OUTPUTS[:3]:  # the plots of this run are already written (earlier ones kept above)
    keep_previous(os.path.join(OUTPUT_DIR, name), OUTPUT_DIR)
best_model.save(os.path.join(OUTPUT_DIR, 'action_model.h5'))
best_model.export(os.path.join(OUTPUT_DIR, 'action_model_savedmodel'))
np.save(os.path.join(OUTPUT_DIR, 'actions.npy'), ACTIONS)
print("saved in", OUTPUT_DIR + ":", ", ".join(OUTPUTS))

if IN_COLAB:
    from google.colab import files

    for name in ('action_model.h5', 'actions.npy', 'confusion_matrix.png'):
        keep_previous(os.path.join(DRIVE_DIR, name), DRIVE_DIR)
        shutil.copy(os.path.join(OUTPUT_DIR, name), DRIVE_DIR)
        files.download(os.path.join(OUTPUT_DIR, name))
    print("copied to", DRIVE_DIR)
