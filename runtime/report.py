"""The fixed protocol's numbers as a plain-text table, in the reader's language: `emobot
evaluate` and `emobot train` print it, the trainer's chat report shows it."""

from typing import Any

from emobot.i18n import label_name, t
from emobot.labels import CLASSES


def metrics_table(metrics: dict[str, Any], lang: str = "en") -> str:
    """Accuracy, balanced accuracy, per-class recall, seed-balanced accuracy and the
    confusion matrix (the keys ml.metrics.summarise writes)."""
    rows = [("images", f"{metrics['n']:,}")]
    rows += [
        (key, f"{metrics[key]:.4f}")
        for key in ("accuracy", "balanced_accuracy", "face_found", "seed_balanced_accuracy")
        if key in metrics
    ]
    titles = [t(lang, f"metrics.{key}") for key, _ in rows]
    if confident := metrics.get("confident"):
        # How the answers fare when the unsure ones name two emotions instead of one.
        titles += [
            t(lang, "metrics.confident", threshold=f"{confident['threshold']:.2f}"),
            t(lang, "metrics.confident_accuracy"),
        ]
        rows += [("", f"{confident['answered']:.4f}"), ("", f"{confident['accuracy']:.4f}")]
    names = {c: label_name(lang, c) for c in CLASSES}
    width = max(len(title) for title in [*titles, *(f"  {n}" for n in names.values())]) + 2
    lines = [f"{title:<{width}}{value:>8}" for title, (_, value) in zip(titles, rows, strict=True)]
    lines.append(t(lang, "metrics.recall"))
    lines += [f"{'  ' + names[c]:<{width}}{metrics['recall'][c]:>8.4f}" for c in CLASSES]
    side = max(len(n) for n in names.values()) + 1
    lines.append(t(lang, "metrics.confusion"))
    lines.append(" " * (side + 2) + "".join(f"{names[c][:8]:>9}" for c in CLASSES))
    for c, row in zip(CLASSES, metrics["confusion_matrix"], strict=True):
        lines.append(f"  {names[c]:<{side}}" + "".join(f"{v:>9}" for v in row))
    return "\n".join(lines)
