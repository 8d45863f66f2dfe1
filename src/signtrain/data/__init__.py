"""The recordings: MP_Data trees read, checked and matched by sign name (a phase before any model).

dataset      one MP_Data tree read: its signs, its sequences, the spec's split
frames       one sequence folder's frame files, the data contract's checks on them
cache        reading thousands of frame files fast (thread pool, cache beside the data)
cachefolder  the cache folder's files, switched atomically
recordings   several recordings in one training, another recording scored by a model
names        one sign, one name across recordings (case, Unicode form, spaces, --alias)
twins        identical takes found by their frames: never one in training and its twin in the test split
check        `signtrain check`: the data doctor, also run at the start of `train`
person       what a recording looks like, and why a model fails on a person
synth        a synthetic signer in the exact data contract (synth_signs: its ten signs)
"""

from signtrain.data import cache, cachefolder, check, dataset, frames, names, person, recordings, synth, twins

__all__ = ["cache", "cachefolder", "check", "dataset", "frames", "names", "person", "recordings", "synth", "twins"]
