from bot import lazy_aiogram

lazy_aiogram.load()  # before any of the bot's modules imports aiogram
