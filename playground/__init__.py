"""A local stand-in for Telegram: a fake Bot API server (`playground.botapi`) that bots and
workers talk to over HTTP, and a Python API to act as the people chatting with them."""
