import json

import pytest

from emobot.settings import Settings, SettingsError, get_settings
from ml.inference import shipped_model_path


def test_admin_ids_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_IDS", "12, 34,56")
    assert Settings(_env_file=None).admin_ids == {12, 34, 56}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "mysql://x"),
        ("BLOB_STORE_URL", "ftp://bucket"),
        ("BATCH_SIZE", "0"),
        ("BATCH_WAIT_MS", "soon"),
        ("ADMIN_IDS", "one,two"),
    ],
)
def test_invalid_setting_fails_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError, match=name):
            get_settings()
    finally:
        get_settings.cache_clear()


def test_empty_variables_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BOT_TOKEN", "DATABASE_URL", "TELEGRAM_API_URL", "ADMIN_IDS"):
        monkeypatch.setenv(name, "")
    settings = Settings(_env_file=None)
    assert settings.bot_token is None
    assert settings.database_url is None
    assert settings.telegram_api_url is None
    assert settings.admin_ids == frozenset()


def test_the_unsure_threshold_is_the_one_the_shipped_model_was_calibrated_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("UNSURE_BELOW", raising=False)
    card = json.loads((shipped_model_path().parent / "model_card.json").read_text())
    assert Settings(_env_file=None).unsure_below == card["calibration"]["unsure_below"]
