"""One table of model formats (signtrain.export.formats): a new entry is all the CLI, the checks and the
runners need to know of a format."""

import numpy as np
import pytest

from signtrain import cli, config
from signtrain.export import convert as export, formats, infer


def test_the_table_names_every_format_and_its_file():
    table = {entry.name: entry for entry in formats.export_formats()}
    assert list(table) == ["keras", "savedmodel", "onnx", "tflite"] and formats.names() == tuple(table)
    assert [table[name].file for name in table] == [config.MODEL_FILE, config.SAVEDMODEL_DIR, "action_model.onnx",
                                                    "action_model.tflite"]
    assert table["keras"].export is None and all(callable(table[name].export) for name in formats.export_names())
    assert formats.export_names() == ("savedmodel", "onnx", "tflite")
    assert [formats.of_path(f"m{suffix}") for suffix in (".h5", ".keras", ".onnx", ".TFLITE")] == [
        "keras", "keras", "onnx", "tflite"]
    with pytest.raises(ValueError, match=r"unknown model file type '\.pt'; signtrain reads \.h5, \.keras, \.onnx, "
                                         r"\.tflite files and SavedModel folders"):
        formats.of_path("model.pt")
    with pytest.raises(ValueError, match="unknown export format keras: choose from savedmodel, onnx, tflite"):
        formats.parse("onnx,keras")
    assert formats.parse(" ONNX,tflite,onnx ") == ["onnx", "tflite"]


def test_a_new_format_is_one_entry(monkeypatch, tmp_path, capsys):
    """An entry with its converter and runner: --export, export --format, predict --format and the
    export check take it without another change."""
    written = []

    def convert(model, path):
        written.append(path)
        with open(path, "w") as handle:
            handle.write("probabilities")
        return path

    def runner(path, threads=None):
        return lambda X: np.full((len(X), 2), 0.5)

    table = formats.export_formats()
    new = formats.Format("toy", "action_model.toy", (".toy",), convert, runner, (), "action_model.toy (a test)")
    monkeypatch.setattr(formats, "export_formats", lambda: table + (new,))
    assert formats.parse("toy") == ["toy"] and formats.of_path("a.toy") == "toy"
    assert cli.build_parser().parse_args(["train", "--data", "x", "--export", "toy"]).export == ["toy"]
    assert cli.build_parser().parse_args(["predict", "--model", "m", "--data", "d", "--format", "toy"]).format == "toy"
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["export", "--help"])
    assert "action_model.toy (a test)" in " ".join(capsys.readouterr().out.split())  # help wraps lines

    class TwoSigns:
        def predict(self, X, verbose=0):
            return np.full((len(X), 2), 0.5)

    records = export.export_and_check(TwoSigns(), str(tmp_path), ["toy"], np.zeros((3, 30, 1662), np.float32))
    assert written == [str(tmp_path / "action_model.toy")]
    assert records["toy"]["file"] == "action_model.toy" and records["toy"]["top1_agree"] == "3/3"
    assert infer.load_predictor(str(tmp_path / "action_model.toy"))(np.zeros((1, 30, 1662))).shape == (1, 2)
