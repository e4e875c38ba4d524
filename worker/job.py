"""One request on its way through a batch of the worker."""

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from db.queue import Claimed
from ml.faces import Face
from worker.replies import Reply, compose_reply


@dataclass(eq=False)  # jobs are compared by identity (they hold arrays)
class Job:
    """One request on its way through a batch."""

    request: Claimed
    lang: str
    data: bytes | None = None
    image: np.ndarray | None = None
    faces: list[Face] = field(default_factory=list)
    turn: int = 0  # degrees clockwise the photo was turned to find its faces upright
    result: dict[str, Any] | None = None
    failure: str | None = None  # a permanent problem with the photo: told to the user, not retried
    failure_text: str = "unreadable"  # what the user is told about it
    retry: str | None = None  # a passing problem: the request goes back to the queue
    flood_wait: int | None = None  # seconds Telegram's flood control asked this chat to wait

    # What the person is told comes from these keys of the catalogue (worker.no_face, …).
    texts: ClassVar[str] = "worker."
    # Whether a private chat's answer carries the feedback buttons (worker.answers).
    feedback: ClassVar[bool] = True

    @property
    def fresh(self) -> bool:
        """Still needs the model (an earlier attempt may have stored its result already)."""
        return self.result is None and self.failure is None and self.retry is None

    @property
    def found_nothing(self) -> bool:
        return not (self.result or {}).get("faces")

    def compose(self, unsure_below: float) -> Reply:
        """The answer, from the stored result (in a thread: drawing takes time)."""
        assert self.result is not None
        return compose_reply(self.result, self.image, self.lang, unsure_below)

    def reaction(self, unsure_below: float) -> str | None:
        """An emoji to react to the person's message with, after the answer; None: none."""
        return None
