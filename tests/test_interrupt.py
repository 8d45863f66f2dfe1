"""Ctrl-C during training: the run stops cleanly, keeps what it learned, and --resume finishes it."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO
from signtrain.data import synth


def epochs_logged(run_dir):
    path = os.path.join(run_dir, "results.csv")
    if not os.path.exists(path):
        return 0
    with open(path) as handle:
        return len(list(csv.DictReader(handle)))


def signal_after_epochs(process, run_dir, epochs, signum):
    """Send signum once run_dir has logged `epochs` epochs (or the process ended, or 180 s); wait for it."""
    deadline = time.time() + 180
    while epochs_logged(run_dir) < epochs and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signum)
    return process.communicate(timeout=120)


def test_sigint_keeps_the_best_model_and_the_run_resumes(tmp_path):
    data_dir = synth.write_mp_data(str(tmp_path / "MP_Data"), sequences=10, seed=8)
    earlier = tmp_path / "runs" / "train" / "exp"  # a finished earlier run that must stay untouched
    earlier.mkdir(parents=True)
    (earlier / "action_model.h5").write_bytes(b"earlier model")
    command = [sys.executable, "-m", "signtrain.cli", "train", "--data", data_dir, "--epochs", "15",
               "--patience", "100"]
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "src"), TF_CPP_MIN_LOG_LEVEL="2")
    # A background job of a non-interactive shell (as CI may be) inherits SIGINT as ignored, and Python
    # then installs no KeyboardInterrupt handler: give the child the default, as a terminal would.
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    run_dir = str(tmp_path / "runs" / "train" / "exp2")
    out, err = signal_after_epochs(process, run_dir, 3, signal.SIGINT)
    assert process.returncode == 130, out + err
    assert "Traceback" not in err, err[-3000:]
    assert f"Continue with: signtrain train --resume {os.path.join('runs', 'train', 'exp2')}" in err
    done = epochs_logged(run_dir)
    assert 3 <= done < 15, err[-3000:]
    assert (earlier / "action_model.h5").read_bytes() == b"earlier model"
    files = set(os.listdir(run_dir))
    assert {"best_model.h5", "last_model.keras", "results.csv", "args.yaml", "training_history.png"} <= files
    assert "action_model.h5" not in files  # only a finished run ships a model
    assert not [name for name in files if ".partial" in name], (files, err[-3000:])

    from tensorflow import keras

    best = keras.models.load_model(os.path.join(run_dir, "best_model.h5"))
    assert best.output_shape == (None, 10)

    process = subprocess.run([sys.executable, "-m", "signtrain.cli", "train", "--resume", run_dir], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stdout + process.stderr
    assert f"resuming {run_dir} after epoch {done}" in process.stdout
    metrics = json.load(open(os.path.join(run_dir, "metrics.json")))
    assert metrics["resumed"] is True and metrics["epochs_run"] == 15 == epochs_logged(run_dir)
    with open(os.path.join(run_dir, "results.csv")) as handle:
        assert [int(row["epoch"]) for row in csv.DictReader(handle)] == list(range(15))
    assert metrics["reload_max_abs_diff"] < 1e-6
    shipped = keras.models.load_model(os.path.join(run_dir, "action_model.h5"))
    assert np.load(os.path.join(run_dir, "actions.npy")).shape == (10,)
    assert shipped.output_shape == (None, 10)
    # A finished run cannot be resumed again (that would overwrite it).
    process = subprocess.run([sys.executable, "-m", "signtrain.cli", "train", "--resume", run_dir], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=60)
    assert process.returncode == 2 and "nothing to resume" in process.stderr


def test_sigterm_stops_like_ctrl_c_and_says_how_to_resume(tmp_path):
    data_dir = synth.write_mp_data(str(tmp_path / "MP_Data"), actions=["Hello", "Yes", "No"], sequences=10, seed=8)
    before = sorted(os.listdir(os.path.join(data_dir, "Hello")))
    run_dir = str(tmp_path / "run")
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "src"), TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen([sys.executable, "-m", "signtrain.cli", "train", "--data", data_dir, "--epochs", "50",
                                "--patience", "100", "--out", run_dir], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = signal_after_epochs(process, run_dir, 2, signal.SIGTERM)
    assert process.returncode == 130, out + err
    assert f"Continue with: signtrain train --resume {run_dir}" in err, err[-3000:]
    assert {"best_model.h5", "last_model.keras", "results.csv"} <= set(os.listdir(run_dir))
    assert sorted(os.listdir(os.path.join(data_dir, "Hello"))) == before


@pytest.fixture(autouse=True)
def _python_handles_ctrl_c():
    """Ctrl-C as an interactive Python has it: a test suite started in the background (`make test &`,
    nohup, some CI runners) inherits SIGINT ignored, and Python then leaves it ignored."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def _fit_with_signals(on_begin):
    """fitting.fit on a small set (3 batches an epoch) with a callback that may send signals; the
    batch hooks seen, in order."""
    from tensorflow import keras

    from signtrain.data import dataset as data
    from signtrain.model import network as model_lib
    from signtrain.training import fitting
    from signtrain.training.settings import TrainSettings

    X, y = synth.synth_arrays(actions=["Hello", "Yes"], sequences=20, seed=1)
    keras.utils.set_random_seed(0)
    net = model_lib.compile_model(model_lib.build_model(2))
    settings = TrainSettings(data="unused", fast=False, reshuffle=False, precise_bn=False)
    seen = []

    class Probe(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(("begin", batch))
            on_begin(len(seen))

        def on_train_batch_end(self, batch, logs=None):
            seen.append(("end", batch))

    with pytest.raises(KeyboardInterrupt):
        every_row = data.Split.of(np.arange(len(X)), [])
        fitting.fit(net, fitting.plan_fit(settings, X, data.one_hot(y, 2), every_row, 0), callbacks=[Probe()], epochs=3,
                    verbose=0)
    return seen


def test_ctrl_c_during_fit_stops_at_the_end_of_the_step_and_the_handlers_come_back():
    """The signal lands inside a step; KeyboardInterrupt comes after the step, from a callback
    (never from inside TensorFlow's own frames); Python's handlers are back afterwards."""
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    seen = _fit_with_signals(lambda count: os.kill(os.getpid(), signal.SIGINT) if count == 3 else None)
    assert seen == [("begin", 0), ("end", 0), ("begin", 1), ("end", 1)]  # step 1 finished, step 2 never began
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_a_second_ctrl_c_stops_at_once():
    def twice(count):
        if count == 3:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)  # the handler runs: the stop is pending
            os.kill(os.getpid(), signal.SIGINT)

    assert _fit_with_signals(twice) == [("begin", 0), ("end", 0), ("begin", 1)]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_resumed_run_counts_patience_from_where_it_stopped(tmp_path):
    """The early-stopping state read back from results.csv decides the stop: two epochs without a
    better validation accuracy before the interrupt plus one after reach patience 3, where a fresh
    count would train on."""
    from tensorflow import keras

    from signtrain import config
    from signtrain.model import network as model_lib
    from signtrain.training import fitting
    from signtrain.training.settings import TrainSettings

    run_dir = str(tmp_path)
    net = model_lib.compile_model(model_lib.build_model(2))
    net.save(os.path.join(run_dir, config.BEST_MODEL_FILE))
    with open(os.path.join(run_dir, config.RESULTS_FILE), "w") as handle:
        handle.write("epoch,loss,val_categorical_accuracy\n0,1.0,0.5\n1,0.9,0.7\n2,0.8,0.6\n3,0.7,0.6\n")
    net, state = fitting.resume_state(run_dir, net, config.MONITOR)
    assert (state.epochs_done, state.best_epoch, state.best, state.wait) == (4, 1, 0.7, 2)
    settings = TrainSettings(data="unused", patience=3)
    path = lambda name: os.path.join(run_dir, name)  # noqa: E731
    for resumed, stops in ((state, True), (None, False)):
        [stopping] = [callback for callback in fitting.callbacks(keras, path, settings, resumed)
                      if isinstance(callback, keras.callbacks.EarlyStopping)]
        stopping.set_model(net)
        net.stop_training = False
        stopping.on_train_begin()
        stopping.on_epoch_end(4, {config.MONITOR: 0.6, "loss": 0.6})
        assert net.stop_training is stops
