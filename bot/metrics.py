"""The bot's Prometheus metrics."""

from prometheus_client import Counter, Histogram

UPDATES = Counter(
    "emobot_bot_updates_total", "Updates received, by type (message, callback_query, …)", ["type"]
)
UPDATE_SECONDS = Histogram(
    "emobot_bot_update_duration_seconds",
    "Seconds from receiving an update to its handler's return, by type",
    ["type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DUPLICATES = Counter(
    "emobot_bot_duplicate_updates_total",
    "Updates skipped because this or another bot process had taken them already",
)
REFUSALS = Counter(
    "emobot_bot_refusals_total",
    "Inputs refused with an explanation, by reason (throttled, not_photo, too_big, no_face, …)",
    ["reason"],
)
ERRORS = Counter(
    "emobot_bot_errors_total", "Updates whose handler failed (the user got an apology)"
)


def refused(reason: str) -> None:
    """Count a refusal; `reason` is the reply's text key (`reject.too_big`) or a plain name."""
    REFUSALS.labels(reason.removeprefix("reject.")).inc()
