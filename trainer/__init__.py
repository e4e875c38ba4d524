"""The training process's parts (its loop lives in `ml/trainer.py` for now)."""
