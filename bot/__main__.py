"""`python -m bot`: the same as `emobot bot`."""

from emobot.cli import main

if __name__ == "__main__":
    main(["bot"])
