"""Loading an MP_Data tree: the naive nested loop against signtrain's parallel, cached loader.

    python bench/load_speed.py [--sequences 30] [--data DIR] [--quick]

Writes the demo's synthetic set (10 signs x 30 sequences x 30 frames = 9,000 .npy files) to a
temp folder (or reads --data), then times, in one run:
- naive: for action, for sequence, for frame: np.load (the spec notebook's loop);
- cold: signtrain.data.dataset.load_dataset without a cache (threads, every file read);
- first: load_dataset with the cache on and none there yet (reads the files and writes the cache);
- cached: load_dataset again (the packed cache, every folder's signature checked).
All must give the same X; last line `ratio: N.NN` (naive / cached). The OS file cache is warm for
all of them (the files were just written or read), which favours the naive loop: on a laptop's
cold disk, and on Windows, each file open costs far more than here.
--cold drops the OS file cache before each of the four loads (Linux, as root: /proc/sys/vm/drop_caches),
as after a reboot or on a laptop whose memory went to other things: what the reader threads and the
cache are for.
--quick (CI) uses 10 signs x 3 sequences to prove the script works: its numbers mean nothing.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "src"))

from signtrain import config  # noqa: E402
from signtrain.data import cache, cachefolder, dataset as data, synth


def naive_load(data_dir, actions, sequence_length=config.SEQUENCE_LENGTH):
    sequences = []
    for action in actions:
        for name in sorted(os.listdir(os.path.join(data_dir, action)), key=int):
            frames = [np.load(os.path.join(data_dir, action, name, f"{index}.npy")) for index in range(sequence_length)]
            sequences.append(frames)
    return np.array(sequences, dtype=np.float32)


def cache_size(folder):
    return sum(entry.stat().st_size for entry in os.scandir(folder))


def drop_os_file_cache():
    """Empty Linux's page cache: the next reads come from the disk."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as handle:
            handle.write("3\n")
    except OSError as error:
        raise SystemExit(f"--cold needs Linux and root to drop the OS file cache ({error})") from None


def timed(function, *args, cold=False, **kwargs):
    if cold:
        drop_os_file_cache()
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequences", type=int, default=config.NUM_SEQUENCES, help="per sign")
    parser.add_argument("--data", default=None, help="an existing MP_Data folder to time instead (not modified "
                                                     "except for its cache file)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cold", action="store_true", help="drop the OS file cache before each load (Linux, root)")
    args = parser.parse_args()
    work = tempfile.mkdtemp()
    try:
        data_dir = args.data
        if data_dir is None:
            data_dir = synth.write_mp_data(os.path.join(work, "MP_Data"), sequences=3 if args.quick else args.sequences)
            # Folders changed in the last seconds are read but not cached (signtrain.data.cache.RACY_SECONDS).
            time.sleep(cache.RACY_SECONDS + 0.5)
        actions = data.resolve_actions(data_dir)
        cache_path = os.path.join(data_dir, cachefolder.CACHE_DIR)
        shutil.rmtree(cache_path, ignore_errors=True)
        files = sum(len(files) for _, _, files in os.walk(data_dir))
        naive, naive_seconds = timed(naive_load, data_dir, actions, cold=args.cold)
        cold, cold_seconds = timed(data.load_dataset, data_dir, actions, use_cache=False, cold=args.cold)
        first, first_seconds = timed(data.load_dataset, data_dir, actions, cold=args.cold)
        cached, cached_seconds = timed(data.load_dataset, data_dir, actions, cold=args.cold)
        for name, dataset in (("cold", cold), ("first", first), ("cached", cached)):
            if not np.array_equal(dataset.X, naive):
                raise SystemExit(f"{name} load differs from the naive loop")
        print(f"{files} files, {len(naive)} sequences, {os.cpu_count()} CPUs, "
              f"{cache.default_workers()} reader threads; cache {cache_size(cache_path) / 1e6:.1f} MB"
              f"{'; OS file cache dropped before each load' if args.cold else '; OS file cache warm'}"
              f"{' (QUICK: numbers mean nothing)' if args.quick else ''}")
        print(f"naive nested loop            {naive_seconds:7.3f} s")
        print(f"signtrain, no cache          {cold_seconds:7.3f} s  ({naive_seconds / cold_seconds:.2f}x)")
        print(f"signtrain, writing the cache {first_seconds:7.3f} s  ({naive_seconds / first_seconds:.2f}x)")
        print(f"signtrain, from the cache    {cached_seconds:7.3f} s  ({naive_seconds / cached_seconds:.2f}x)")
        print(f"ratio: {naive_seconds / cached_seconds:.2f}")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
