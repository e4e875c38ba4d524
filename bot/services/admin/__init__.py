"""Admin commands: dataset statistics, export to the chat, retraining and the model registry
(one module each; the router calls them through this package)."""

from bot.services.admin.export import export_to_chat, raw_ids_asked, start_export
from bot.services.admin.promotion import (
    PromotePlan,
    compare,
    plan_promotion,
    promote_version,
)
from bot.services.admin.stats import models_text, stats_text
from bot.services.admin.training import retrain

__all__ = [
    "PromotePlan",
    "compare",
    "export_to_chat",
    "models_text",
    "plan_promotion",
    "promote_version",
    "raw_ids_asked",
    "retrain",
    "start_export",
    "stats_text",
]
