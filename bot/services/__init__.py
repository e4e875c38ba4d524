"""What the handlers call: the contribute, predict, mine and admin logic, free of aiogram
routing so that it reads (and is tested) on its own."""
