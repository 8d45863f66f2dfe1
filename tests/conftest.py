import os
import subprocess
import sys

# Under pytest-xdist each test process gets its share of the cores (make test: 2 processes on a 2-core
# machine, one core each), and so do the processes a test starts (notebook kernels, bench scripts).
# Unset, every process runs a thread per core: a training then waits on the other process's threads,
# measured 69 s in the suite for a resume test that takes 14 s alone. Set before numpy and TensorFlow start.
if os.environ.get("PYTEST_XDIST_WORKER"):
    share = str(max(1, len(os.sched_getaffinity(0)) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))
    for name in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(name, share)

import numpy as np
import pytest

from signtrain import cli
from signtrain.data import dataset as data, synth

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REALDATA = os.path.join(os.path.dirname(REPO), "shared", "realdata")


def realdata_file(name):
    """Path of one shared real recording; under CI a missing file fails loudly instead of skipping."""
    path = os.path.join(REALDATA, name)
    if not os.path.exists(path):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} is missing: CI must have ../shared/realdata beside the checkout")
        pytest.skip(f"{path} not available")
    return path


def colab_python():
    """The Colab-stack environment's Python (`make test` makes it and sets SIGNTRAIN_COLAB_PYTHON);
    under CI its absence fails loudly instead of skipping."""
    python = os.environ.get("SIGNTRAIN_COLAB_PYTHON")
    python = os.path.join(REPO, python) if python else None  # a relative path is the checkout's
    if not python or not os.path.exists(python):
        if os.environ.get("CI") == "true":
            pytest.fail("SIGNTRAIN_COLAB_PYTHON is not set to the Colab-stack environment: run the tests with `make test`")
        pytest.skip("the Colab-stack environment is made by `make test` (SIGNTRAIN_COLAB_PYTHON)")
    return python


def unpack_realdata(name, out_dir, limit_per_class=None, with_script=False):
    """Write a shared recording out as an MP_Data tree, as a user would have it.

    with_script=True runs the shared unpack.py itself. It re-reads the whole X array from the
    .npz for every sequence (~2 minutes for 300 sequences), so by default the same layout is
    written here from one read; test_realdata proves both give identical files.
    """
    path = realdata_file(name)
    if with_script:
        command = [sys.executable, os.path.join(REALDATA, "unpack.py"), path, str(out_dir)]
        if limit_per_class:
            command += ["--limit-per-class", str(limit_per_class)]
        subprocess.run(command, check=True, capture_output=True)
        return str(out_dir)
    recording = np.load(path, allow_pickle=False)
    X, y, seq_ids = recording["X"], recording["y"], recording["seq_ids"]
    actions = [str(a) for a in recording["actions_raw"]]
    keep, seen = [], {}
    for row, label in enumerate(y):
        seen[label] = seen.get(label, 0) + 1
        if not limit_per_class or seen[label] <= limit_per_class:
            keep.append(row)
    return data.write_tree(str(out_dir), X[keep], [actions[int(y[row])] for row in keep], seq_ids[keep])


def write_sequence(root, action, sequence, frames):
    """Write frames (list of 1-D arrays) as root/action/sequence/<i>.npy."""
    folder = os.path.join(root, action, str(sequence))
    os.makedirs(folder, exist_ok=True)
    for index, frame in enumerate(frames):
        np.save(os.path.join(folder, f"{index}.npy"), frame)
    return folder


# `make check` runs the tests not marked slow: the modules below train models (or run the notebook) in
# most of their tests; elsewhere a test that trains is marked @pytest.mark.slow, or uses short_run.
SLOW_MODULES = {"test_bench", "test_cli", "test_distribute", "test_ensemble", "test_evaluate", "test_export",
                "test_fast", "test_features", "test_hostile", "test_interrupt", "test_notebook", "test_people",
                "test_precise_bn", "test_preprocess", "test_realdata", "test_recordings", "test_stream"}


def pytest_collection_modifyitems(items):
    for item in items:
        if item.module.__name__ in SLOW_MODULES or "short_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _run_in_tmp(tmp_path, monkeypatch):
    # Default run folders (runs/train/exp...) land in the test's temp dir, never in the checkout.
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def short_run(tmp_path_factory):
    """Train 3 epochs on a small synthetic set of the spec's 10 signs, through `signtrain train`."""
    root = tmp_path_factory.mktemp("short")
    data_dir = synth.write_mp_data(str(root / "MP_Data"), sequences=10, seed=5)
    os.remove(os.path.join(data_dir, "Stop", "4", "17.npy"))  # one broken sequence, reported
    cwd = os.getcwd()
    os.chdir(root)
    try:
        code = cli.main(["train", "--data", data_dir, "--epochs", "3", "--seed", "7"])
    finally:
        os.chdir(cwd)
    assert code == 0
    return root, os.path.join(root, "runs", "train", "exp"), data_dir
