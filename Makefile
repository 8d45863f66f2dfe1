# Two commands for a fresh clone:
#   make demo   set up .venv, generate synthetic data for the spec's 10 signs, train on it
#   make test   set up .venv and .venv-colab (Colab's TensorFlow and Keras) and run every test (what CI runs)
#   make check  the tests that train no model (a few minutes, while you work)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Colab's own stack (CPU and GPU runtimes, checked 2026-12): the notebook is also run under exactly
# these versions by the tests (tests/test_notebook_colab.py), in a second environment made once.
COLAB_VENV ?= .venv-colab
COLAB_TENSORFLOW ?= 2.19.0
COLAB_KERAS ?= 3.10.0

# Test processes (pytest-xdist): one per core of a 2-core laptop or CI runner. Each file's tests stay in
# one process (--dist loadfile): the module fixtures that train a run are made once.
TEST_WORKERS ?= 2

.PHONY: setup colab-setup demo test check notebook bench clean

setup: $(VENV)/.installed

colab-setup: $(COLAB_VENV)/.installed

# tf-keras (Keras 2) is there only to test that action_model.h5 loads in Keras 2 too. It declares a
# dependency on the full `tensorflow` wheel; the tensorflow-cpu already installed provides the same
# module, so it goes in without dependencies, at the installed TensorFlow's version.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[cpu,dev,export]"
	$(PY) -m pip install --quiet --no-deps "tf-keras==$$($(PY) -c 'import tensorflow as tf; print(tf.__version__.rsplit(".", 1)[0])').*"
	touch $@

# Only what the notebook imports (it is self-contained), plus the kernel that runs it headless.
$(COLAB_VENV)/.installed: Makefile
	$(PYTHON) -m venv $(COLAB_VENV)
	$(COLAB_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(COLAB_VENV)/bin/python -m pip install --quiet "tensorflow-cpu==$(COLAB_TENSORFLOW)" "keras==$(COLAB_KERAS)" \
		scikit-learn matplotlib seaborn nbclient ipykernel
	touch $@

demo: setup
	$(VENV)/bin/signtrain demo

test: setup colab-setup
	SIGNTRAIN_COLAB_PYTHON=$(abspath $(COLAB_VENV))/bin/python $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

check: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not slow"

notebook: setup  # regenerate ml/training_notebook.ipynb from ml/training_notebook.py
	$(PY) ml/build_notebook.py

clean:
	rm -rf $(VENV) $(COLAB_VENV) runs
