"""Local training script (CPU or GPU): the same pipeline as `signtrain train`.

    python ml/train_model.py --data MP_Data [--epochs 200] [--out runs/train/my_run]

Everything lives in the signtrain package (src/signtrain); this file only starts it, so the
script, the CLI and the tests can never drift apart. `--help` lists every flag.
"""

import os
import sys

try:
    from signtrain.cli import main
except ImportError:  # run from a clone without `pip install -e .`: use the package beside this file
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    from signtrain.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
