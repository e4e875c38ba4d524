"""Training parameters from a dict (the queue) and from /retrain's words."""

import pytest

from cli.main import _build
from ml.architectures import ARCHITECTURES
from ml.job_params import JobParams, ParamError
from ml.params import ARCH_NAMES, TrainConfig


def test_the_light_arch_list_matches_the_architectures() -> None:
    assert tuple(ARCHITECTURES) == ARCH_NAMES


def test_params_are_checked() -> None:
    assert JobParams.from_dict({"epochs": 3, "arch": "seed_cnn"}).epochs == 3
    for bad in ({"arch": "resnet"}, {"epochs": 0}, {"colour": "blue"}, {"balance": -1}):
        with pytest.raises(ValueError):
            JobParams.from_dict(bad)


def test_params_from_words() -> None:
    params = JobParams.from_text("epochs=30  arch=seed_cnn promote=нет balance=1000", promote=True)
    assert params == JobParams(arch="seed_cnn", epochs=30, balance=1000, promote=False)
    assert JobParams.from_text("", promote=True) == JobParams(promote=True)
    assert JobParams.from_text("promote=Yes").promote
    for bad, message in (
        ("epochs", "not understood"),
        ("epochs=-3", "must be 1 to 500, not -3"),
        ("epochs=x", "whole number from 1 to 500"),
        ("epochs=99999999999999999999", "must be 1 to 500"),
        ("promote=maybe", "yes or no"),
        ("arch=vgg", "no arch"),
        # Which of the two was meant is a guess: refused rather than the last one taken.
        ("epochs=1 epochs=2", "epochs is given more than once"),
        ("promote=yes arch=seed_cnn promote=no", "promote is given more than once"),
    ):
        with pytest.raises(ParamError, match=message) as error:
            JobParams.from_text(bad)
        assert error.value.code  # the bot says it in the user's language by this code


def test_training_defaults_have_one_source() -> None:
    # /retrain, the queue, `emobot train` and `ml.train_archive` all start from TrainConfig.
    default = TrainConfig()
    assert (JobParams().epochs, JobParams().arch) == (default.epochs, default.arch)
    train = _build()[1]["train"]
    assert train.get_default("epochs") == default.epochs
    assert train.get_default("arch") == default.arch
    config = JobParams(epochs=7, arch="seed_cnn").train_config(init="v1.keras")
    assert (config.epochs, config.arch, config.init) == (7, "seed_cnn", "v1.keras")
    assert config.learning_rate == default.learning_rate
