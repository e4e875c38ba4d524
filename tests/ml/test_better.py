"""The one rule that decides whether a model is better (the trainer's promotion, /promote)."""

from ml.better import judge, unsure_below, verdict_text


def sets(ferplus: float | None, real: float | None, test_4: float = 0.75) -> dict[str, object]:
    metrics: dict[str, object] = {"test_4": {"n": 7178, "balanced_accuracy": test_4}}
    if ferplus is not None:
        metrics["ferplus_test"] = {"n": 6917, "balanced_accuracy": ferplus}
    if real is not None:
        metrics["realphotos"] = {"n": 851, "balanced_accuracy": real}
    return metrics


def test_the_protocol_sets_decide_not_test_4() -> None:
    verdict = judge(sets(0.84, 0.74, test_4=0.74), sets(0.82, 0.72, test_4=0.76))
    assert verdict.basis == ("ferplus_test", "realphotos") and verdict.better
    assert abs((verdict.new or 0) - 0.79) < 1e-9 and abs((verdict.old or 0) - 0.77) < 1e-9
    # Only the sets both were measured on count: without the photos set, ferplus-test alone.
    only = judge(sets(0.80, None), sets(0.82, 0.60))
    assert only.basis == ("ferplus_test",) and only.comparable and not only.better


def test_sets_of_other_sizes_are_not_compared() -> None:
    other = sets(0.90, None)
    other["ferplus_test"] = {"n": 19, "balanced_accuracy": 0.9}  # a smaller vote file
    assert judge(other, sets(0.80, None)).basis == ()


def test_the_database_split_when_no_protocol_set_is_shared() -> None:
    new = {"balanced_accuracy": 0.61, "dataset": {"version": "7-abc"}}
    old = {"balanced_accuracy": 0.55, "dataset": {"version": "7-abc"}}
    assert judge(new, old).basis == ("test",) and judge(new, old).better
    grown = {**old, "dataset": {"version": "8-def"}}  # the split has changed since
    verdict = judge(new, grown)
    assert verdict.basis == () and not verdict.comparable and not verdict.better


def test_the_verdict_in_words_and_a_model_s_threshold() -> None:
    verdict = judge(sets(0.84, 0.74), sets(0.82, 0.72))
    assert verdict_text("en", verdict, 5, 3) == (
        "Mean balanced accuracy on ferplus-test, real photos: v5 0.790, the active v3 0.770."
    )
    assert "реальные фото" in verdict_text("ru", verdict, 5, 3)
    split = {"dataset": {"version": "7-abc"}}
    one = judge({"balanced_accuracy": 0.61, **split}, {"balanced_accuracy": 0.55, **split})
    assert verdict_text("en", one, 5, 3) == (
        "Balanced accuracy on the database test split: v5 0.610, the active v3 0.550."
    )
    assert unsure_below({"calibration": {"unsure_below": 0.57}}) == 0.57
    assert unsure_below({}) is None and unsure_below({"calibration": None}) is None
