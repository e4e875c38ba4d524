"""What the processes (bot, worker, trainer) run on: one start-up and shutdown (serving), the
operations endpoint, the Bot API client and the metrics report. Imports the kernel (emobot),
ml and db; never a process or the command line."""
