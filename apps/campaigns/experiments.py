"""A/B tests of a campaign's contents: the rules of an experiment and the decision.

Each content is a variant, sent at the occurrence's time to `buckets_per_variant` of the
ten bucket topics (a tenth of the registered audience each). After `window_seconds`, the
variant with the highest rate of the metric (opened, clicked or a conversion, over
delivered, from the apps' events) wins if it beats every other variant in a two-proportion
z-test (two-sided, alpha = 0.05 split over the comparisons: Bonferroni, so that several
variants do not raise the chance of a false winner) and every variant has at least
`min_sample` deliveries; otherwise the fallback content the user chose is sent. The rest of
the audience receives the chosen content as a later delivery of the same occurrence.

Allowed: one-off campaigns, sent at one instant, without translations. Recurring campaigns
(which occurrence's result would decide the next?), recipient time zones (variants would
reach zones at different hours) and translated contents are refused with a 400.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

ALPHA = 0.05
MIN_VARIANTS, MAX_VARIANTS = 2, 4
BUCKETS = 10
METRICS = ("opened", "clicked")
CONVERSION = re.compile(r"^conversion:[A-Za-z0-9][A-Za-z0-9_.-]{0,49}$")
DEFAULTS = {"metric": "opened", "window_seconds": 3600, "buckets_per_variant": 1,
            "fallback": 0, "min_sample": 100}  # fmt: skip
WINDOW_BOUNDS = (300, 7 * 24 * 3600)


def problems(experiment: Mapping[str, Any], *, contents: int, target_topics: int) -> dict:
    """Field -> messages for an experiment this campaign cannot run (empty: fine)."""
    errors: dict[str, list[str]] = {}

    def refuse(field: str, message: str) -> None:
        errors.setdefault(f"experiment.{field}", []).append(message)

    metric = experiment.get("metric")
    if metric not in METRICS and not (isinstance(metric, str) and CONVERSION.match(metric)):
        refuse("metric", "One of opened, clicked or conversion:<name>.")
    window = experiment.get("window_seconds")
    if not isinstance(window, int) or not WINDOW_BOUNDS[0] <= window <= WINDOW_BOUNDS[1]:
        refuse("window_seconds", f"Between {WINDOW_BOUNDS[0]} and {WINDOW_BOUNDS[1]} seconds.")
    if not MIN_VARIANTS <= contents <= MAX_VARIANTS:
        refuse("variants", f"An experiment compares {MIN_VARIANTS} to {MAX_VARIANTS} contents; "
               f"this campaign has {contents}.")  # fmt: skip
    per = experiment.get("buckets_per_variant")
    if not isinstance(per, int) or per < 1 or per * max(contents, 1) >= BUCKETS:
        refuse("buckets_per_variant", "At least 1, and the variants together must leave part of "
               f"the {BUCKETS} buckets for the winner.")  # fmt: skip
    elif target_topics + per * contents > 5:
        refuse("buckets_per_variant", "The target and the test buckets together exceed FCM's 5 "
               f"topics per condition ({target_topics} + {per * contents}).")  # fmt: skip
    fallback = experiment.get("fallback")
    if not isinstance(fallback, int) or not 0 <= fallback < max(contents, 1):
        refuse("fallback", "The position of the content to send when no variant wins.")
    sample = experiment.get("min_sample")
    if not isinstance(sample, int) or sample < 1:
        refuse("min_sample", "At least 1 delivered notification per variant.")
    return errors


def buckets_of(variant: int, per: int) -> list[int]:
    return list(range(variant * per, (variant + 1) * per))


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple:
    """The 95 % Wilson score interval of a proportion (None when nothing was delivered)."""
    if trials <= 0:
        return (None, None)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    margin = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return (max(0.0, centre - margin), min(1.0, centre + margin))


def two_proportion_p_value(s1: int, n1: int, s2: int, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test (1.0 when it cannot be run)."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    pooled = (s1 + s2) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if spread == 0:
        return 1.0
    z = abs(s1 / n1 - s2 / n2) / spread
    return math.erfc(z / math.sqrt(2))


def decide(samples: Sequence[tuple[int, int]], *, fallback: int, min_sample: int) -> dict:
    """The decision from (successes, delivered) per variant, in content order."""
    variants = [
        {"variant": index, "delivered": n, "successes": s,
         "rate": (s / n) if n else None, "interval": list(wilson_interval(s, n))}
        for index, (s, n) in enumerate(samples)
    ]  # fmt: skip
    best = max(range(len(samples)), key=lambda i: (variants[i]["rate"] or -1.0, -i))
    threshold = ALPHA / (len(samples) - 1)
    comparisons = [
        {"variant": other, "p_value": two_proportion_p_value(*samples[best], *samples[other])}
        for other in range(len(samples)) if other != best
    ]  # fmt: skip
    small = [v["variant"] for v in variants if v["delivered"] < min_sample]
    if small:
        winner, reason = (
            fallback,
            (f"Too few deliveries to decide (variants {small} below {min_sample}): the fallback."),
        )
    elif all(c["p_value"] < threshold for c in comparisons):
        winner, reason = (
            best,
            (
                f"Variant {best} has the highest rate and beats every other variant "
                f"(p < {threshold:.4g}, alpha = {ALPHA} over {len(comparisons)} comparison(s))."
            ),
        )
    else:
        winner, reason = (
            fallback,
            (
                f"No significant difference (alpha = {ALPHA} over {len(comparisons)} comparison(s)): "
                "the fallback."
            ),
        )
    return {"winner": winner, "best": best, "reason": reason, "alpha": ALPHA,
            "threshold": threshold, "min_sample": min_sample, "variants": variants,
            "comparisons": comparisons, "significant": winner == best and not small
            and all(c["p_value"] < threshold for c in comparisons)}  # fmt: skip
