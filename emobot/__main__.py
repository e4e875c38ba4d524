from emobot.cli import main

main()
