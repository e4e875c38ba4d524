"""The training process: claims queued training runs, trains through `ml/`, registers the
model and reports to the admin (`service.py`); a run from samples to a registered model
(`job.py`)."""
