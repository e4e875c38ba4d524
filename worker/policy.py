"""What becomes of a request after an attempt: the worker's one failure policy.

Every outcome of an attempt is a `Problem` (or none); `decide` maps it, and whether this was
the request's last allowed attempt, to what the worker does: reply, try again later, or give
the request up, with or without telling the user (a text key) and under which metric label.
"""

from dataclasses import dataclass
from enum import Enum


class Problem(Enum):
    OVER_ATTEMPTS = "over_attempts"  # claimed again after its last attempt (a crashed worker)
    PASSING = "passing"  # storage, the model or detection failed: may work next time
    PHOTO = "photo"  # the photo itself cannot be used: retrying never helps
    UNDELIVERABLE = "undeliverable"  # the chat cannot be written to
    SEND_FAILED = "send_failed"  # Telegram unreachable or failing: may work next time
    FLOODED = "flooded"  # flood control: the chat takes nothing more for a while


class Action(Enum):
    REPLY = "reply"
    RETRY = "retry"
    DEFER = "defer"  # back to the queue until the chat's flood wait is over
    FAIL = "fail"  # given up, and the user told why
    DROP = "drop"  # given up without a word: nothing can reach the user


@dataclass(frozen=True)
class Decision:
    action: Action
    outcome: str  # the label of worker_requests_total
    text: str | None = None  # the key of what the user is told (FAIL only)


def decide(problem: Problem | None, last_try: bool, photo_text: str = "unreadable") -> Decision:
    """`photo_text`: what to tell about a PHOTO problem (unreadable, unusable).

    A flood wait is deferred, not retried: the answer is ready, only the chat must wait; on the
    last try (or a wait longer than FLOOD_WAIT_MAX_SECONDS) nothing can reach the user, and an
    apology would be refused all the same. The database being unreachable is no problem of a
    request at all: the worker waits for it (worker/outage.py) and never gets here with it."""
    match problem:
        case None:
            return Decision(Action.REPLY, "answered")
        case Problem.OVER_ATTEMPTS:
            return Decision(Action.FAIL, "gave_up", "gave_up")
        case Problem.PASSING if last_try:
            return Decision(Action.FAIL, "gave_up", "gave_up")
        case Problem.PASSING | Problem.SEND_FAILED if not last_try:
            return Decision(Action.RETRY, "retried")
        case Problem.FLOODED if not last_try:
            return Decision(Action.DEFER, "deferred")
        case Problem.FLOODED:
            return Decision(Action.DROP, "flood_limited")
        case Problem.PHOTO:
            return Decision(Action.FAIL, photo_text, photo_text)
        case Problem.UNDELIVERABLE:
            return Decision(Action.DROP, "undeliverable")
        case Problem.SEND_FAILED:
            return Decision(Action.DROP, "send_failed")
    raise AssertionError(f"no decision for {problem}")
