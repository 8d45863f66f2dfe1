"""The model the live app loads: the spec's network and the front-ends that travel inside it.

network     the spec's 3 LSTM + BatchNorm + Dropout, Dense 64/32/softmax, compiled as the spec
preprocess  --normalize: shoulder-relative keypoints as fixed Keras layers
features    --features relative: hands relative to the wrist, body to the shoulders, in Keras layers
ensemble    --ensemble N: N trained members averaged in one model
"""

from signtrain.model import ensemble, features, network, preprocess

__all__ = ["ensemble", "features", "network", "preprocess"]
