"""The prediction queue in PostgreSQL: requests are enqueued here and claimed by workers.

Inserting a row fires the `prediction_requests` NOTIFY (a trigger in the schema), which
wakes listening workers.

Life of a request: `queued` → claimed (`processing`, a lease in `locked_until`, `attempts` + 1)
→ result written (`save_results`, still `processing`) → reply sent → `mark_replied` (`done`).
While a batch is worked on, its worker renews the lease (`extend_lease`), so a batch slower
than the lease is not claimed a second time by another worker.
A worker that dies leaves its rows `processing` with a lease that runs out; any worker then
claims them again: a worker with nothing to do sleeps no longer than until the soonest lease
runs out (`next_claimable_in`), so a dead worker's requests are answered about LEASE_SECONDS
after its last renewal. A row whose result is already written is answered from that result, so the
model is not run twice.

A request may also go back to `queued` with `locked_until` in the future (`retry_later`): a
passing failure, or an answer deferred until its chat's flood wait is over. A database outage
sends nothing back: the worker waits for PostgreSQL with its batch in hand (worker/outage.py);
saving results or recording replies afterwards takes its rows back if nobody claimed them.

The one window that remains: the reply reached Telegram but the worker died before
`mark_replied` committed. The row is then answered a second time after the lease. It cannot be
closed, because the Bot API has no idempotency key: whatever is recorded before the send
could be a reply that never went out (lost), whatever after could be a duplicate. A lost
answer is worse than a repeated one, so the record comes after, as soon as the send returns:
replies that return while one UPDATE is running are recorded together by the next one (group
commit), so the window is at most two short UPDATEs wide.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import PredictionRequest
from emobot.i18n import DEFAULT_LANGUAGE


async def enqueue(
    session: AsyncSession,
    *,
    chat_id: int,
    user_id: int | None,
    message_id: int | None,
    blob_key: str,
    whole: bool = False,
    language: str = DEFAULT_LANGUAGE,
    thread_id: int | None = None,
    file_id: str | None = None,
    kind: str = "photo",
) -> PredictionRequest:
    """Queue a request; `language` is what the reply will speak, `thread_id` the forum topic
    it goes to, `kind` photo or video (a clip)."""
    request = PredictionRequest(
        chat_id=chat_id,
        user_id=user_id,
        message_id=message_id,
        thread_id=thread_id,
        file_id=file_id,
        blob_key=blob_key,
        whole=whole,
        language=language,
        kind=kind,
    )
    session.add(request)
    await session.flush()
    return request


async def waiting_for(session: AsyncSession, user_id: int) -> int:
    """The user's requests not answered yet (queued or being processed)."""
    statement = select(func.count()).where(
        PredictionRequest.user_id == user_id,
        PredictionRequest.status.in_(("queued", "processing")),
    )
    return await session.scalar(statement) or 0


async def recent_in_chat(session: AsyncSession, chat_id: int, seconds: float) -> int:
    """The chat's requests of the last `seconds` (a group's rate limit, shared by replicas)."""
    statement = select(func.count()).where(
        PredictionRequest.chat_id == chat_id,
        PredictionRequest.created_at > func.now() - timedelta(seconds=seconds),
    )
    return await session.scalar(statement) or 0


async def answered_by_kind(session: AsyncSession) -> dict[str, int]:
    """Requests answered so far (done), per kind: /stats."""
    rows = await session.execute(
        select(PredictionRequest.kind, func.count())
        .where(PredictionRequest.status == "done")
        .group_by(PredictionRequest.kind)
    )
    return {kind: n for kind, n in rows}


async def next_claimable_in(session: AsyncSession) -> float | None:
    """Seconds until the soonest lease (or retry delay) runs out; None when none is running."""
    seconds = await session.scalar(
        text("""
        SELECT extract(epoch FROM min(locked_until) - now()) FROM prediction_requests
        WHERE status IN ('queued', 'processing') AND locked_until > now()
        """)
    )
    return None if seconds is None else float(seconds)


async def depth(session: AsyncSession) -> int:
    """Requests not answered yet (queued or being processed)."""
    statement = select(func.count()).where(PredictionRequest.status.in_(("queued", "processing")))
    return await session.scalar(statement) or 0


@dataclass(frozen=True)
class Backlog:
    queued: int
    processing: int
    oldest_age_s: float  # of the oldest request not answered yet; 0 when there is none


async def backlog(session: AsyncSession) -> Backlog:
    """What the queue holds now, for the workers' metrics (one scan of the claim index)."""
    status = PredictionRequest.status
    row = (
        await session.execute(
            select(
                func.count().filter(status == "queued"),
                func.count().filter(status == "processing"),
                func.coalesce(
                    func.extract("epoch", func.now() - func.min(PredictionRequest.created_at)), 0
                ),
            ).where(status.in_(("queued", "processing")))
        )
    ).one()
    return Backlog(queued=row[0], processing=row[1], oldest_age_s=float(row[2]))


@dataclass(frozen=True)
class Claimed:
    """A request a worker holds the lease of, with what it needs to answer it."""

    id: int
    chat_id: int
    user_id: int | None
    message_id: int | None
    blob_key: str
    whole: bool
    attempts: int
    result: dict[str, Any] | None  # written by an earlier attempt that could not reply
    model_version: int | None
    created_at: datetime
    language: str  # what the reply speaks, decided when the request was made
    thread_id: int | None = None  # the forum topic the answer goes to
    kind: str = "photo"  # or "video": a clip


# Claimable: queued, or processing with a lease that ran out (its worker died). A queued row
# may carry `locked_until` too: a retry that must not start before then.
# Fair: each user's claimable requests are ranked oldest first, and a batch takes everybody's
# first before anybody's second, so a burst from one user does not make the others wait behind
# it. (Ranked in a subquery: FOR UPDATE cannot go with a window function.)
# Photos and clips are claimed apart (`kind`): a worker's clip lane takes one clip at a time
# while its photo batches go on.
_CLAIMABLE = (
    "q.status IN ('queued', 'processing') AND (q.locked_until IS NULL OR q.locked_until < now())"
    " AND q.kind = :kind"
)
_CLAIM = text(f"""
WITH ranked AS (
    SELECT q.id, q.created_at,
        row_number() OVER (PARTITION BY coalesce(q.user_id, q.chat_id) ORDER BY q.created_at, q.id)
            AS turn
    FROM prediction_requests AS q
    WHERE {_CLAIMABLE}
), picked AS (
    -- The condition again: a row another worker claimed meanwhile is checked anew once locked.
    SELECT q.id FROM prediction_requests AS q JOIN ranked AS r ON r.id = q.id
    WHERE {_CLAIMABLE}
    ORDER BY r.turn, r.created_at, r.id
    LIMIT :limit
    FOR UPDATE OF q SKIP LOCKED
)
UPDATE prediction_requests AS p
SET status = 'processing', locked_by = :worker,
    locked_until = now() + make_interval(secs => :lease),
    attempts = p.attempts + 1, started_at = coalesce(p.started_at, now()), updated_at = now()
FROM picked
WHERE p.id = picked.id
RETURNING p.id, p.chat_id, p.user_id, p.message_id, p.blob_key, p.whole, p.attempts, p.result,
    p.model_version, p.created_at, p.language, p.thread_id, p.kind
""")


async def claim(
    session: AsyncSession, *, worker: str, limit: int, lease_s: float, kind: str = "photo"
) -> list[Claimed]:
    """Take up to `limit` claimable requests of `kind`, each user's oldest first and users in
    turn; rows other workers hold are skipped. Returned oldest first."""
    rows = await session.execute(
        _CLAIM, {"worker": worker, "limit": limit, "lease": float(lease_s), "kind": kind}
    )
    return sorted((Claimed(**row._mapping) for row in rows), key=lambda c: (c.created_at, c.id))


_SAVE = text("""
UPDATE prediction_requests AS p
SET result = v.result, model_version = v.model_version, timings = v.timings,
    locked_until = now() + make_interval(secs => :lease), updated_at = now()
FROM jsonb_to_recordset(:rows) AS v(id bigint, result jsonb, model_version int, timings jsonb)
WHERE p.id = v.id AND p.locked_by = :worker AND p.status = 'processing'
RETURNING p.id
""").bindparams(bindparam("rows", type_=JSONB))


async def save_results(
    session: AsyncSession,
    *,
    worker: str,
    lease_s: float,
    results: dict[int, tuple[dict[str, Any], int | None, dict[str, Any]]],
) -> set[int]:
    """Write (result, model version, timings) per request before replying, renewing the lease.

    Returns the ids this worker still holds; a row missing here was taken over by another
    worker after our lease ran out, and must not be answered by us.
    """
    if not results:
        return set()
    rows = [
        {"id": i, "result": r, "model_version": v, "timings": t} for i, (r, v, t) in results.items()
    ]
    done = await session.execute(_SAVE, {"rows": rows, "worker": worker, "lease": float(lease_s)})
    return set(done.scalars())


async def still_held(session: AsyncSession, *, worker: str, ids: list[int]) -> set[int]:
    """Of `ids`, those this worker holds and nobody has answered yet."""
    held = await session.scalars(
        select(PredictionRequest.id).where(
            PredictionRequest.id.in_(ids),
            PredictionRequest.locked_by == worker,
            PredictionRequest.status == "processing",
            PredictionRequest.replied_at.is_(None),
        )
    )
    return set(held)


async def extend_lease(
    session: AsyncSession, *, worker: str, ids: list[int], lease_s: float
) -> set[int]:
    """Renew the lease of the requests of `ids` this worker still holds (a batch taking longer
    than the lease keeps it); returns those ids. Answered or taken-over rows are left alone."""
    if not ids:
        return set()
    rows = await session.execute(
        text("""
        UPDATE prediction_requests
        SET locked_until = now() + make_interval(secs => :lease), updated_at = now()
        WHERE id = ANY(:ids) AND locked_by = :worker AND status = 'processing'
        RETURNING id
        """),
        {"ids": ids, "worker": worker, "lease": float(lease_s)},
    )
    return set(rows.scalars())


_REPLIED = text("""
UPDATE prediction_requests
SET status = 'done', replied_at = now(), finished_at = now(), locked_until = NULL,
    updated_at = now()
WHERE id = ANY(:ids) AND status = 'processing' AND replied_at IS NULL
RETURNING id
""")


async def mark_replied(session: AsyncSession, ids: list[int]) -> set[int]:
    """Record that these answers went out (status done); returns the ids not recorded before."""
    if not ids:
        return set()
    return set((await session.execute(_REPLIED, {"ids": ids})).scalars())


async def mark_failed(session: AsyncSession, request_id: int, error: str, *, replied: bool) -> bool:
    """Give up on a request; `replied` says whether an apology reached the user."""
    row = await session.execute(
        text("""
        UPDATE prediction_requests
        SET status = 'failed', error = :error, replied_at = CASE WHEN :replied THEN now() END,
            finished_at = now(), locked_until = NULL, updated_at = now()
        WHERE id = :id AND status = 'processing' AND replied_at IS NULL
        RETURNING id
        """),
        {"id": request_id, "error": error, "replied": replied},
    )
    return row.first() is not None


async def retry_later(
    session: AsyncSession,
    *,
    worker: str,
    request_id: int,
    error: str,
    delay_s: float,
    count_attempt: bool = True,
) -> None:
    """Put a request this worker holds back in the queue, not to be claimed before `delay_s`.

    The attempt stays counted (a request that keeps failing reaches `max_attempts`), unless
    `count_attempt` is false: nothing was tried (its chat is waiting out a flood wait).
    """
    await session.execute(
        text("""
        UPDATE prediction_requests
        SET status = 'queued', error = :error, locked_by = NULL,
            locked_until = now() + make_interval(secs => :delay), updated_at = now(),
            attempts = CASE WHEN :counted THEN attempts ELSE greatest(attempts - 1, 0) END
        WHERE id = :id AND locked_by = :worker AND status = 'processing'
        """),
        {
            "id": request_id,
            "worker": worker,
            "error": error,
            "delay": float(delay_s),
            "counted": count_attempt,
        },
    )


async def release(
    session: AsyncSession, *, worker: str, ids: list[int] | None, kind: str | None = None
) -> int:
    """Give back claimed requests not worked on (shutdown): queued again, attempt not counted.

    `ids=None` gives back every request of `kind` the worker holds: between two batches it
    holds no photo, unless a claim whose commit was lost to a database outage took some
    without its knowing (the clip it may be reading meanwhile is not given back).
    """
    if ids is not None and not ids:
        return 0
    rows = await session.execute(
        text("""
        UPDATE prediction_requests
        SET status = 'queued', locked_by = NULL, locked_until = NULL,
            attempts = greatest(attempts - 1, 0), updated_at = now()
        WHERE (CAST(:ids AS bigint[]) IS NULL OR id = ANY(:ids)) AND locked_by = :worker
            AND (CAST(:kind AS text) IS NULL OR kind = :kind)
            AND status = 'processing' AND replied_at IS NULL
        RETURNING id
        """),
        {"ids": ids, "worker": worker, "kind": kind},
    )
    return len(rows.all())
