"""One Bot API client and one token rule for the bot, the worker and the trainer."""

import pytest
from pydantic import SecretStr

from emobot.settings import Settings
from runtime.telegram import PLAYGROUND_TOKEN, ConfigurationError, make_bot, make_client


async def test_the_token_rule() -> None:
    playground = make_bot(Settings(_env_file=None, telegram_api_url="http://127.0.0.1:1"))
    telegram = make_bot(Settings(_env_file=None, bot_token=SecretStr("42:real")))
    try:
        assert playground.token == PLAYGROUND_TOKEN
        assert playground.session.api.base.startswith("http://127.0.0.1:1/")
        assert telegram.token == "42:real" and "api.telegram.org" in telegram.session.api.base
    finally:
        await playground.session.close()
        await telegram.session.close()
    with pytest.raises(ConfigurationError, match="BOT_TOKEN"):
        make_bot(Settings(_env_file=None))


async def test_the_token_rule_for_the_small_client() -> None:
    playground = make_client(Settings(_env_file=None, telegram_api_url="http://127.0.0.1:1/"))
    telegram = make_client(Settings(_env_file=None, bot_token=SecretStr("42:real")))
    assert (playground.token, playground.session.base_url) == (
        PLAYGROUND_TOKEN,
        "http://127.0.0.1:1",
    )
    assert (telegram.token, telegram.session.base_url) == ("42:real", "https://api.telegram.org")
    with pytest.raises(ConfigurationError, match="BOT_TOKEN"):
        make_client(Settings(_env_file=None))
