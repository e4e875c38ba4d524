"""FSM states of the dialogs (kept in PostgreSQL by `db.fsm.PostgresStorage`)."""

from aiogram.fsm.state import State, StatesGroup


class Contribute(StatesGroup):
    consent = State()  # agreeing to their photos being used (to this version of the text)
    label = State()  # choosing the class on the inline keyboard
    photos = State()  # sending photos; data: label, pending (checked photos)
    confirm = State()  # summary shown: save or discard


class Predict(StatesGroup):
    photo = State()  # /predict asked for a photo
