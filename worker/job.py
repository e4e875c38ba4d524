"""One request on its way through a batch of the worker."""

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from db.queue import Claimed
from ml.faces import Face


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

    @property
    def fresh(self) -> bool:
        """Still needs the model (an earlier attempt may have stored its result already)."""
        return self.result is None and self.failure is None and self.retry is None
