"""The entry points above every process: the `emobot` command (`python -m cli`), its
subcommands, the supervisor behind `emobot run` and the dataset importer."""
