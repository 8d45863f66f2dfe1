"""Does action_model.h5 load in an old app's Keras? Each model signtrain builds (the spec's, --normalize,
--features relative), with trained-looking weights, is written by export.save_h5 and loaded with plain
load_model by another Python (an old TensorFlow's own Keras 2, made once by hand), which predicts on
the same sequences; the table gives the largest difference from the Keras 3 model.

    python -m venv /tmp/tf215 && /tmp/tf215/bin/pip install tensorflow-cpu==2.15.1
    python bench/keras2_h5.py --python /tmp/tf215/bin/python
"""

import argparse
import datetime
import functools
import os
import subprocess
import sys
import tempfile

import numpy as np

LOAD = """
import sys
import numpy as np
import tensorflow as tf
model = tf.keras.models.load_model(sys.argv[1])  # plain load_model, as the live app calls it
np.save(sys.argv[3], model.predict(np.load(sys.argv[2]), verbose=0))
import keras
print(tf.__version__, keras.__version__)
"""
KINDS = {"spec": {}, "--normalize": {"normalize": True}, "--features relative": {"features": "relative"}}


def trained_looking(net, rng):
    """Random weights of each trainable layer's scale, so the outputs are not all near 1/num_actions."""
    for layer in net.layers:
        if layer.trainable and layer.weights:
            layer.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) if "variance" not in w.name
                               else rng.uniform(0.5, 2, w.shape).astype(np.float32) for w in layer.weights])


def check(kind, other_python, folder, rng):
    from signtrain import config
    from signtrain.model import network as model_lib
    from signtrain.export import convert as export

    build = functools.partial(model_lib.build_model, 5, **KINDS[kind])
    net = build()
    trained_looking(net, rng)
    X = rng.random((4, config.SEQUENCE_LENGTH, config.NUM_FEATURES), dtype=np.float32)
    path = os.path.join(folder, f"{len(os.listdir(folder))}.h5")
    keras3_only = export.save_h5(net, path, build, X)
    np.save(os.path.join(folder, "x.npy"), X)
    result = subprocess.run([other_python, "-c", LOAD, path, os.path.join(folder, "x.npy"),
                             os.path.join(folder, "y.npy")], capture_output=True, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    if result.returncode:
        return keras3_only, None, result.stderr.strip().splitlines()[-1]
    difference = np.max(np.abs(np.load(os.path.join(folder, "y.npy")) - net.predict(X, verbose=0)))
    return keras3_only, float(difference), result.stdout.split()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", required=True, help="a Python with an old TensorFlow (its own Keras 2)")
    args = parser.parse_args()
    import keras
    import tensorflow as tf

    rng = np.random.default_rng(0)
    print(f"# action_model.h5 in another Keras ({datetime.date.today()}; written by TensorFlow {tf.__version__}, "
          f"Keras {keras.__version__})\n\n`python bench/keras2_h5.py --python {args.python}`\n")
    print("| model | save_h5 says | loaded by (TensorFlow, Keras) | max abs difference |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for kind in KINDS:
            keras3_only, difference, detail = check(kind, args.python, folder, rng)
            said = f"Keras 3 only: {keras3_only}" if keras3_only else "both"
            loaded = ", ".join(detail) if difference is not None else f"FAILED: {detail}"
            print(f"| {kind} | {said} | {loaded} | {difference if difference is None else f'{difference:.1e}'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
