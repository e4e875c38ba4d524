"""`python -m trainer`: run the trainer until SIGTERM or Ctrl-C."""

from emobot.cli import main

main(["trainer"])
