"""The Trainer's module: data, model, augmentation, export and hyperparameters.

TF Transform 1.16 and this project use Keras 2 (`tf_keras`) through `tf.keras`. That choice must
be made before TensorFlow is first imported, so it is made here, once; every other package of
the project imports this one first.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
