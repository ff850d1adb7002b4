"""The experiment decision, judged by seeded simulations of many experiments: fake apps
open each variant at a programmed rate (no clock, no engine)."""

import random

import pytest

from apps.campaigns import experiments

DELIVERED = 1500


def simulate(rates, seed, n=DELIVERED):
    rng = random.Random(seed)
    samples = [(sum(rng.random() < rate for _ in range(n)), n) for rate in rates]
    return experiments.decide(samples, fallback=0, min_sample=100)


def test_a_better_variant_wins_at_least_95_percent_of_the_time():
    runs = [simulate([0.10, 0.15], seed) for seed in range(400)]
    picked_b = sum(run["winner"] == 1 for run in runs) / len(runs)
    assert picked_b >= 0.95, picked_b


def test_equal_variants_declare_a_winner_at_most_7_percent_of_the_time():
    runs = [simulate([0.12, 0.12], 10_000 + seed) for seed in range(600)]
    declared = sum(run["significant"] for run in runs) / len(runs)
    assert declared <= 0.07, declared
    assert all(run["winner"] == 0 for run in runs if not run["significant"])  # the fallback


def test_four_equal_variants_stay_within_alpha_overall():
    runs = [simulate([0.1, 0.1, 0.1, 0.1], 20_000 + seed, n=800) for seed in range(300)]
    assert sum(run["significant"] for run in runs) / len(runs) <= 0.07


def test_too_small_a_sample_sends_the_fallback():
    result = experiments.decide([(10, 50), (40, 50)], fallback=0, min_sample=100)
    assert (result["winner"], result["significant"]) == (0, False)
    assert "Too few" in result["reason"]


def test_figures_are_reported():
    result = experiments.decide([(100, 1000), (160, 1000)], fallback=0, min_sample=100)
    assert result["winner"] == 1
    low, high = result["variants"][1]["interval"]
    assert low < 0.16 < high
    (comparison,) = result["comparisons"]
    assert comparison["variant"] == 0 and comparison["p_value"] < 0.001


@pytest.mark.parametrize(
    "change,field",
    [({"metric": "read"}, "experiment.metric"), ({"window_seconds": 10}, "experiment.window_seconds"),
     ({"buckets_per_variant": 5}, "experiment.buckets_per_variant"),
     ({"fallback": 2}, "experiment.fallback"), ({"min_sample": 0}, "experiment.min_sample")],
)  # fmt: skip
def test_bad_experiments(change, field):
    errors = experiments.problems({**experiments.DEFAULTS, **change}, contents=2, target_topics=1)
    assert list(errors) == [field]
