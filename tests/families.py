"""What the hostile-input families (tests/test_family_*.py, issue 16) share: hypothesis settings
that give the same examples on every run, copies of a tree per example, explicit examples first."""

import os
import shutil
import tempfile

from hypothesis import HealthCheck, Phase, example, settings
from hypothesis import strategies as st


# The same examples on every run (CI reproducible); modest counts keep the file fast.
def family_settings(examples):
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    phases=[Phase.explicit, Phase.generate, Phase.shrink],
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def fresh_copy(source, tmp_path, name="MP_Data"):
    """A copy of source in a folder of its own (hypothesis reuses one tmp_path for all examples).

    Files are hard links where the file system has them (same bytes and modification times, no
    copying): every damage below writes a new file in place of a link (_unlinked), never into the
    shared one.
    """
    target = os.path.join(tempfile.mkdtemp(dir=tmp_path), name)
    shutil.copytree(source, target, copy_function=link_or_copy)
    return target


def link_or_copy(source, target):
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def unlinked(path):
    """The bytes of path, and path removed: what is written there next is a file of its own."""
    with open(path, "rb") as handle:
        raw = handle.read()
    os.remove(path)
    return raw


def with_examples(cases):
    """@example for each case (kwargs), before the generated ones."""
    def decorate(test):
        for case in reversed(cases):
            test = example(**case)(test)
        return test
    return decorate


# Any JSON value (what a damaged index.json or metrics.json may hold where a value should be).
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)
