"""The kernel every layer may import: settings, labels, the i18n catalogue, logging and the
face hash. It imports nothing of the platform (ml, db, the processes, runtime, cli).

The `emobot` command lives in cli/ (`python -m cli`)."""

import os

# TensorFlow's C++ side prints its CPU-feature and oneDNN notices at INFO when it is first
# imported, and reads this variable only then: every entry point imports this package before
# anything imports TensorFlow (and `emobot run` hands it on to its children). Warnings and
# errors still show; a value set by the operator wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
