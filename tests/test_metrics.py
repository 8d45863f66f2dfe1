"""metrics.json as one record (signtrain.report.metrics.Metrics): its keys are a contract."""

import json

from signtrain.report.metrics import Metrics


def test_a_run_s_file_reads_and_writes_back_key_for_key():
    """Every key a run wrote comes back unchanged and in order, a key this version does not know included
    (a newer or hand-edited file), so `signtrain export` adding its table drops nothing."""
    written = {"test_accuracy": 0.9, "test_accuracy_ci95": [0.7, 0.97], "test_correct": 27, "n_test": 30,
               "actions": ["Hello", "Yes"], "h5_loads_in": ["keras3", "keras2"], "a_later_key": {"x": 1}}
    metrics = Metrics.from_json(json.loads(json.dumps(written)))
    assert metrics.test_accuracy == 0.9 and metrics.actions == ["Hello", "Yes"] and metrics.extra == {"a_later_key": {"x": 1}}
    metrics.exports = {"onnx": {"file": "action_model.onnx"}}
    content = metrics.to_json()
    assert list(content) == list(written) + ["exports"]  # an older run gains no key it never had
    assert {key: content[key] for key in written} == written
    assert content["exports"] == {"onnx": {"file": "action_model.onnx"}}
    assert list(Metrics(test_accuracy=1.0).to_json())[:4] == ["test_accuracy", "test_accuracy_ci95", "test_correct",
                                                             "test_loss"]  # a run's own record: the file's order


def test_keys_that_do_not_apply_are_not_written():
    """A run without an export, an ensemble, a Keras 3-only file or --test-data has no such key (as before)."""
    content = Metrics(test_accuracy=1.0).to_json()
    for absent in ("exports", "ensemble", "h5_keras3_only_because", "external_test", "extra"):
        assert absent not in content
    assert content["diagnostics"] == [] and content["resumed"] is False
    assert Metrics(h5_keras3_only_because="Keras 2 predicts otherwise").to_json()["h5_keras3_only_because"]
