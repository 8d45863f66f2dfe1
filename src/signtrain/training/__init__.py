"""One training run and its parts (train.train() runs them as labelled phases).

train        the run, start to finish: prepare, plan, fit, finish
settings     a run's settings declared once, their checks, args.yaml (resume: reading it back)
runfolder    runs/train/exp, exp2, ...: never an existing run, claimed by one run at a time
fitting      what model.fit is given, the spec's callbacks made safe to interrupt and resume
batches      the training rows as batches in the seed's order (hand_dropout: --hand-dropout)
fast         the spec's model trained faster on a CPU, same math (precise_bn: exact statistics)
stream       --stream: data bigger than memory
distribute   --strategy: tf.distribute over several devices or machines
finish       the best epoch judged on the test split, the run folder's files written
crossval     `signtrain cv`: K trainings, each scored on rows it never saw
"""

from signtrain.training import crossval, distribute, fitting, settings, train
from signtrain.training.crossval import cross_validate
from signtrain.training.settings import TrainSettings
from signtrain.training.train import TrainingInterrupted, settings_from_run, versions

__all__ = ["TrainSettings", "TrainingInterrupted", "cross_validate", "crossval", "distribute", "fitting",
           "settings", "settings_from_run", "train", "versions"]
