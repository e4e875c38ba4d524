"""The worker's failure policy, outcome by outcome."""

import pytest

from worker.policy import Action, Decision, Problem, decide

TABLE = [
    # problem, last try, what is done
    (None, False, Decision(Action.REPLY, "answered")),
    (None, True, Decision(Action.REPLY, "answered")),
    (Problem.OVER_ATTEMPTS, False, Decision(Action.FAIL, "gave_up", "gave_up")),
    (Problem.OVER_ATTEMPTS, True, Decision(Action.FAIL, "gave_up", "gave_up")),
    (Problem.PASSING, False, Decision(Action.RETRY, "retried")),
    (Problem.PASSING, True, Decision(Action.FAIL, "gave_up", "gave_up")),
    (Problem.PHOTO, False, Decision(Action.FAIL, "unusable", "unusable")),
    (Problem.PHOTO, True, Decision(Action.FAIL, "unusable", "unusable")),
    (Problem.UNDELIVERABLE, False, Decision(Action.DROP, "undeliverable")),
    (Problem.UNDELIVERABLE, True, Decision(Action.DROP, "undeliverable")),
    (Problem.SEND_FAILED, False, Decision(Action.RETRY, "retried")),
    (Problem.SEND_FAILED, True, Decision(Action.DROP, "send_failed")),
    (Problem.FLOODED, False, Decision(Action.DEFER, "deferred")),
    (Problem.FLOODED, True, Decision(Action.DROP, "flood_limited")),
]


@pytest.mark.parametrize(("problem", "last_try", "expected"), TABLE)
def test_decide(problem: Problem | None, last_try: bool, expected: Decision) -> None:
    assert decide(problem, last_try, photo_text="unusable") == expected


def test_every_problem_is_decided() -> None:
    assert {row[0] for row in TABLE} == {None, *Problem}
