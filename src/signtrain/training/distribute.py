"""Training on several devices or machines with tf.distribute, nothing home-made.

--strategy mirrored: MirroredStrategy, every GPU of this machine (or CPU devices, see below).
--strategy multiworker: MultiWorkerMirroredStrategy across machines; each machine runs the same
command with its own TF_CONFIG (the cluster and its index in it). Worker 0 is the chief: it alone
writes the run folder; the others write to a temp folder that is removed at the end.

The batch size stays per replica: with N replicas each step takes N x --batch-size sequences and
the gradients are averaged, as tf.distribute does. Without GPUs, SIGNTRAIN_LOGICAL_CPUS=N splits
the CPU into N logical devices (to try a strategy out; it is not faster).
"""

import contextlib
import json
import os

STRATEGIES = ("none", "mirrored", "multiworker")
LOGICAL_CPUS_VARIABLE = "SIGNTRAIN_LOGICAL_CPUS"


def _split_cpu(tf):
    count = os.environ.get(LOGICAL_CPUS_VARIABLE)
    if not count:
        return None
    if not count.isdecimal() or int(count) < 1:
        raise ValueError(f"{LOGICAL_CPUS_VARIABLE}={count!r}: set it to a whole number of CPU devices, e.g. 2")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * int(count))
    except RuntimeError:
        raise RuntimeError(f"{LOGICAL_CPUS_VARIABLE} must be set before TensorFlow starts (in the environment "
                           f"of the command)") from None
    return [device.name for device in tf.config.list_logical_devices("CPU")]


def make_strategy(name):
    """The tf.distribute strategy for --strategy NAME, or None for 'none' (TensorFlow's default)."""
    if name not in STRATEGIES:
        raise ValueError(f"--strategy {name!r} is not one of {', '.join(STRATEGIES)}")
    if name == "none":
        return None
    import tensorflow as tf

    cpus = _split_cpu(tf)
    if name == "mirrored":
        # Every GPU; without GPUs the logical CPUs (MirroredStrategy would otherwise use one CPU).
        return tf.distribute.MirroredStrategy(devices=None if tf.config.list_physical_devices("GPU") else cpus)
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief():
    """True for the process that writes the run folder: TF_CONFIG's chief, else worker 0, else alone."""
    cluster_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = cluster_config.get("task") or {}
    if not task:
        return True
    if "chief" in cluster_config.get("cluster", {}):
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0


def scope(strategy):
    """The strategy's scope (variables made in it are mirrored), or a no-op without one."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def validation_batch(batch_size, rows, replicas):
    """A validation batch size that splits evenly across the replicas. Keras 3.15 builds a model
    under a strategy from the first validation batch split across the replicas and fails when that
    split is uneven: at most batch_size (or the rows there are), a multiple of the replicas."""
    return max(replicas, min(batch_size, rows) // replicas * replicas)
