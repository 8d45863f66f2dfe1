"""`--ensemble N`: N trainings with seeds seed, seed+1, ... on the same split, shipped as one model.

Why: on a person the model never saw, the same recipe scores differently from seed to seed (76.8%,
82.6% and 85.5% on the same six strangers); the mean of several models' probabilities is steadier
and a little better (bench/results/real_people.md). What: one saved model that takes the raw
(30, 1662) frames, computes the fixed front-end once, runs each member's spec layers side by side
and averages their softmax outputs with a standard Keras Average layer: plain `load_model` in
Keras 3 and tf_keras, ONNX and TFLite convert it. It costs N trainings and N times the LSTM work
per prediction.
"""

from signtrain.model import network as model_lib


def combine(members, build):
    """One model holding each trained member's spec layers (build(members=N) makes the empty one),
    their softmax outputs averaged; compiled as the spec's."""
    net = build(members=len(members))
    for number, member in enumerate(members, start=1):
        _, stack = model_lib.front_end_and_stack(member)
        ours = sorted((layer for layer in net.layers if layer.name.startswith(f"member{number}_")),
                      key=lambda layer: layer.name)
        if [type(layer) for layer in ours] != [type(layer) for layer in stack]:
            raise ValueError(f"member {number} has other layers than the ensemble's")
        for source, target in zip(stack, ours):
            target.set_weights(source.get_weights())
    return model_lib.compile_model(net)


def member_accuracies(members, X, y):
    """Each member's accuracy on X (labels y), as metrics.json's ensemble record gives it."""
    return [float((member.predict(X, verbose=0).argmax(axis=1) == y).mean()) for member in members]
