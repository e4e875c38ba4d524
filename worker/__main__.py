"""`python -m worker`: run one prediction worker until SIGTERM or Ctrl-C."""

from emobot.cli import main

main(["worker"])
