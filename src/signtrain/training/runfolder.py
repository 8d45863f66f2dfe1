"""The run folder: made new (runs/train/exp, exp2, ...; never an existing run), claimed by one
run at a time, checked for room before any training, and cleaned when a run keeps nothing."""

import errno
import os
import shutil
import tempfile

from signtrain import config, files
from signtrain.training import distribute

MIN_FREE_BYTES = 200 * 1024 * 1024  # models, SavedModel, logs and plots of one run, with room to spare
DISK_FULL_BYTES = 16 * 1024 * 1024  # below this, a failed write is taken for a full disk
# Created exclusively in a new run folder while the run trains: two runs started together with the
# same --out cannot both write into it. Removed when the run ends (finished, interrupted or failed).
CLAIM_FILE = ".signtrain_training"


def new_run_dir(base=config.DEFAULT_RUNS_DIR, name="exp"):
    """Create and return base/exp, base/exp2, ...: the first that does not exist yet."""
    os.makedirs(base, exist_ok=True)
    index = 1
    while True:
        path = os.path.join(base, name if index == 1 else f"{name}{index}")
        try:
            os.mkdir(path)  # atomic: two runs started together never share a folder
            return path
        except FileExistsError:
            index += 1


def prepare_run_dir(out, base=config.DEFAULT_RUNS_DIR):
    """A new, writable run folder with room for the outputs, checked before any training."""
    in_use = FileExistsError(f"--out {out!r} is being written by another signtrain run (started at the same time, or "
                             f"killed: if none is running, delete the folder); pick another folder")
    if out is not None and os.path.isdir(out) and os.listdir(out) == [CLAIM_FILE]:
        raise in_use
    if out is not None and os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise FileExistsError(
            f"--out {out!r} already exists and is not empty; signtrain never overwrites a run. "
            f"Pick a new folder, or leave --out out to get the next {config.DEFAULT_RUNS_DIR}/expN."
        )
    try:
        run_dir = new_run_dir(base) if out is None else out
        os.makedirs(run_dir, exist_ok=True)
        # The claim proves the folder writable, and only one run gets it (O_EXCL is atomic).
        claim = os.open(os.path.join(run_dir, CLAIM_FILE), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        os.write(claim, f"{os.getpid()}\n".encode())
        os.close(claim)
    except FileExistsError:  # the other run claimed it between the check above and now
        raise in_use from None
    except OSError as error:
        where = out or base
        raise PermissionError(
            f"cannot write the run folder {where!r}: {error.strerror or error}. Pass --out with a folder "
            f"on a disk you can write to."
        ) from None
    free = shutil.disk_usage(run_dir).free
    if free < MIN_FREE_BYTES:
        os.remove(os.path.join(run_dir, CLAIM_FILE))
        if not os.listdir(run_dir):
            os.rmdir(run_dir)  # leave no empty run folder behind
        raise OSError(
            f"only {free // 2**20} MB free on the disk of {run_dir!r}; a run needs about "
            f"{MIN_FREE_BYTES // 2**20} MB. Free some space or pass --out on another disk."
        )
    return run_dir


def check_outside_data(out, data_dir, base=config.DEFAULT_RUNS_DIR):
    """A run folder inside the data folder would be read as a sign by the next run: refused."""
    where = os.path.realpath(out if out is not None else base)
    data_root = os.path.realpath(data_dir)
    if os.path.commonpath([where, data_root]) == data_root:
        flag = f"--out {out!r}" if out is not None else f"the default run folder {base!r} (from this working folder)"
        raise ValueError(f"{flag} is inside the data folder {data_dir!r}: the next run would take the run folder for "
                         f"a sign. Put runs outside it, e.g. --out {os.path.join(os.path.dirname(data_root), 'runs')}")


def open_run(out, base=config.DEFAULT_RUNS_DIR, resume_dir=None):
    """The folder a run writes to. Only the chief of a multi-worker run writes the real one; the
    other workers write to a temp folder, removed when they finish."""
    if not distribute.is_chief():
        return tempfile.mkdtemp(prefix="signtrain_worker_")
    return resume_dir or prepare_run_dir(out, base)


def release(run_dir):
    """The run no longer writes run_dir: its claim goes (the folder itself stays, unless discarded)."""
    claim = os.path.join(run_dir, CLAIM_FILE)
    if os.path.exists(claim):
        os.remove(claim)


def discard(run_dir, created):
    """Remove what a run that kept nothing wrote: the folder if the run made it, else its contents."""
    if created:
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    for name in os.listdir(run_dir):
        files.remove_path(os.path.join(run_dir, name))


def drop_partials(run_dir):
    """Remove the temp files of writes an interrupt or a full disk cut short (files.partial_name)."""
    for name in os.listdir(run_dir):
        if ".partial" in name:
            files.remove_path(os.path.join(run_dir, name))


def disk_full(error, run_dir):
    return (getattr(error, "errno", None) == errno.ENOSPC or "No space left on device" in str(error)
            or shutil.disk_usage(run_dir).free < DISK_FULL_BYTES)


def disk_full_message(run_dir, best_path):
    free = shutil.disk_usage(run_dir).free // 2**20
    if os.path.exists(best_path):
        return (f"the disk of {run_dir} is full ({free} MB free): training stopped. {os.path.basename(best_path)} "
                f"keeps the best epoch so far; free some space, then continue with: signtrain train --resume {run_dir}")
    return (f"the disk of {run_dir} is full ({free} MB free) before the first epoch ended: nothing to keep, the run "
            f"folder was removed. Free some space (a run needs about {MIN_FREE_BYTES // 2**20} MB) and start again")
