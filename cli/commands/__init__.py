"""Subcommands of `emobot`: every module here defines `register(subparsers)`.

Modules import their heavy dependencies (TensorFlow, aiogram) inside the command, so that
`emobot --help` and light commands start fast.
"""
