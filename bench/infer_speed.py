"""How fast each shipped format answers the live app: one sequence per camera frame.

    python bench/infer_speed.py [--run RUN_DIR] [--calls 200] [--quick]

Without --run it trains the spec's model on the synthetic signer (10 signs x 20 sequences, 30
epochs), exports every format through signtrain's own export (each checked against Keras on the
test sequences), then measures in one process, one after the other:
- predict: Keras' model.predict on one (1, 30, 1662) sequence, what tutorials call every frame;
- keras call: the same model through one traced tf.function;
- savedmodel, onnx (ONNX Runtime, its default threads and 1 thread), tflite (LiteRT, 1 thread).
Single-sequence latency: median and p95 over --calls calls after 20 warm-up calls. Batch 32:
sequences per second (TFLite takes one sequence per call: 32 calls). Top-1 of every format is
compared with predict's on all test sequences. Last line: `ratio: N.NN`, predict's median latency
over the fastest shipped format's (savedmodel, onnx, tflite files).
--quick (CI) trains 1 epoch and makes 10 calls only to prove the script works.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from signtrain import config  # noqa: E402
from signtrain.data import synth
from signtrain.export import convert as export, formats, infer
from signtrain.model import network as model_lib  # noqa: E402
from signtrain.training.train import TrainSettings, train, versions  # noqa: E402

SHIPPED = ("savedmodel", "onnx", "onnx, 1 thread", "tflite")


def trained_run(work, epochs):
    data_dir = synth.write_mp_data(os.path.join(work, "MP_Data"), sequences=20, seed=11)
    run_dir, _ = train(TrainSettings(data=data_dir, epochs=epochs, out=os.path.join(work, "run"), verbose=0,
                                     export=["onnx", "tflite"]))
    return run_dir


def latency(predict, X, calls, warmup=20):
    for index in range(warmup):
        predict(X[index % len(X)][None])
    times = []
    for index in range(calls):
        row = X[index % len(X)][None]
        started = time.perf_counter()
        predict(row)
        times.append(time.perf_counter() - started)
    return float(np.median(times)) * 1000, float(np.percentile(times, 95)) * 1000


def throughput(predict, X, repeats):
    batch = np.resize(X, (32,) + X.shape[1:])
    predict(batch)
    started = time.perf_counter()
    for _ in range(repeats):
        predict(batch)
    return 32 * repeats / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default=None, help="a finished run folder (default: train one on synthetic data)")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="1 epoch, 10 calls: proves the script runs")
    args = parser.parse_args()
    calls = 10 if args.quick else args.calls
    with tempfile.TemporaryDirectory() as work:
        if args.run:  # a copy: the exports and metrics.json of the user's run stay as they are
            run_dir = os.path.join(work, "run")
            shutil.copytree(args.run, run_dir)
            export.export_run(run_dir, ["savedmodel", "onnx", "tflite"])
        else:
            run_dir = trained_run(work, 1 if args.quick else 30)
        X_test, _ = export.read_test_sequences(run_dir)
        net = model_lib.load_model(os.path.join(run_dir, config.MODEL_FILE))
        path = {name: os.path.join(run_dir, formats.get(name).file) for name in formats.export_names()}
        methods = {
            "predict": infer.keras_predict(net),
            "keras call": infer.keras_compiled(net),
            "savedmodel": infer.load_predictor(path["savedmodel"]),
            "onnx": infer.load_predictor(path["onnx"]),
            "onnx, 1 thread": infer.load_predictor(path["onnx"], threads=1),
            "tflite": infer.load_predictor(path["tflite"], threads=1),
        }
        reference = methods["predict"](X_test)
        rows = {}
        for name, predict in methods.items():
            outputs = predict(X_test)
            median, p95 = latency(predict, X_test, calls)
            rows[name] = {
                "median_ms": median,
                "p95_ms": p95,
                "batch32_per_s": throughput(predict, X_test, 2 if args.quick else 10),
                "max_abs_diff": float(np.max(np.abs(outputs - reference))),
                "top1_same": int(np.sum(outputs.argmax(1) == reference.argmax(1))),
            }
    print(f"versions: {json.dumps({k: v for k, v in versions().items() if k != 'platform'})}; "
          f"{len(X_test)} test sequences, {calls} calls{' (QUICK: numbers mean nothing)' if args.quick else ''}\n")
    print("| format | median ms | p95 ms | batch 32, sequences/s | vs predict (median) | max abs diff vs predict "
          "| top-1 same as predict |\n|---|---|---|---|---|---|---|")
    base = rows["predict"]["median_ms"]
    for name, row in rows.items():
        print(f"| {name} | {row['median_ms']:.3f} | {row['p95_ms']:.3f} | {row['batch32_per_s']:.0f} | "
              f"{base / row['median_ms']:.1f}x | {row['max_abs_diff']:.1e} | {row['top1_same']}/{len(X_test)} |")
    fastest = min(SHIPPED, key=lambda name: rows[name]["median_ms"])
    identical = all(rows[name]["top1_same"] == len(X_test) for name in rows)
    print(f"\nfastest shipped format: {fastest}; top-1 identical on all test sequences in every format: "
          f"{'yes' if identical else 'NO'}")
    print(f"ratio: {base / rows[fastest]['median_ms']:.2f}")


if __name__ == "__main__":
    main()
