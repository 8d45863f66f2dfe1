# Two commands for a fresh clone:
#   make demo   set up .venv, generate synthetic data for the spec's 10 signs, train on it
#   make test   set up .venv and run every test (what CI runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test notebook bench clean

setup: $(VENV)/.installed

# tf-keras (Keras 2) is there only to test that action_model.h5 loads in Keras 2 too. It declares a
# dependency on the full `tensorflow` wheel; the tensorflow-cpu already installed provides the same
# module, so it goes in without dependencies, at the installed TensorFlow's version.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[cpu,dev,export]"
	$(PY) -m pip install --quiet --no-deps "tf-keras==$$($(PY) -c 'import tensorflow as tf; print(tf.__version__.rsplit(".", 1)[0])').*"
	touch $@

demo: setup
	$(VENV)/bin/signtrain demo

test: setup
	$(PY) -m pytest -q

notebook: setup  # regenerate ml/training_notebook.ipynb from ml/training_notebook.py
	$(PY) ml/build_notebook.py

clean:
	rm -rf $(VENV) runs
