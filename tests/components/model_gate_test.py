"""The gate's statistics against scipy, and the Evaluator config that applies them."""

import math

import numpy as np
import pytest
import tensorflow_model_analysis as tfma
from scipy.stats import binom, binomtest

from components.model_gate.paired import METRIC_NAME, PairedWorse, correct
from components.model_gate.stats import clopper_pearson, worse_p_value
from pipeline.config import GateConfig
from pipeline.pipeline import make_eval_config


@pytest.mark.parametrize("lost, gained", [(0, 0), (1, 0), (3, 1), (7, 0), (9, 7), (0, 12),
                                          (25, 14), (40, 41), (120, 95)])
def test_the_p_value_is_the_exact_one_sided_binomial_test_on_the_discordant_pairs(lost, gained):
    n = lost + gained
    expected = 1.0 if n == 0 else binomtest(lost, n, 0.5, alternative="greater").pvalue
    assert worse_p_value(lost, gained) == pytest.approx(expected, rel=1e-12)


def test_only_a_loss_counts_against_the_candidate():
    assert worse_p_value(7, 0) == 2**-7
    assert worse_p_value(0, 7) == 1.0  # significantly better is never refused
    assert worse_p_value(4, 4) > 0.5
    assert worse_p_value(2, 0) == 0.25  # two images lower: noise
    assert worse_p_value(12, 0) < 0.001
    with pytest.raises(ValueError, match="counts must be >= 0"):
        worse_p_value(-1, 3)


@pytest.mark.parametrize("correct_count, total", [(0, 10), (10, 10), (35, 69), (1, 2),
                                                  (57, 69), (900, 1000)])
def test_clopper_pearson_bounds_put_each_tail_at_its_share(correct_count, total):
    low, high = clopper_pearson(correct_count, total, 0.95)
    assert 0.0 <= low <= correct_count / total <= high <= 1.0
    # The exact interval's definition: at its bounds the observed count is a 2.5% tail.
    if correct_count > 0:
        assert binom.sf(correct_count - 1, total, low) == pytest.approx(0.025, rel=1e-6)
    else:
        assert low == 0.0 and high == pytest.approx(1 - 0.025 ** (1 / total))
    if correct_count < total:
        assert binom.cdf(correct_count, total, high) == pytest.approx(0.025, rel=1e-6)
    else:
        assert high == 1.0 and low == pytest.approx(0.025 ** (1 / total))


def test_one_image_on_69_is_well_inside_the_interval():
    """Issue 22's case: 0.507 and 0.522 (35 and 36 of 69) are the same model within noise."""
    low, high = clopper_pearson(35, 69)
    assert high - low > 0.2 and low < 36 / 69 < high
    with pytest.raises(ValueError, match="0 <= correct <= total"):
        clopper_pearson(5, 4)


def test_correct_reads_a_sigmoid_at_one_half_and_a_softmax_by_its_argmax():
    assert correct(np.array([1]), np.array([0.51])) and correct(np.array([0]), np.array([0.5]))
    assert not correct(np.array([1]), np.array([0.2]))
    assert correct(np.array([2]), np.array([0.1, 0.2, 0.7]))
    assert not correct(np.array([0]), np.array([0.1, 0.2, 0.7]))


def _paired_thresholds(config: tfma.EvalConfig) -> dict[str, float]:
    found = {}
    for metric in config.metrics_specs[0].metrics:
        if METRIC_NAME in metric.config:
            for per_slice in metric.per_slice_thresholds:
                where = "class" if per_slice.slicing_specs[0].feature_keys else "overall"
                change = per_slice.threshold.change_threshold
                assert change.direction == tfma.MetricDirection.HIGHER_IS_BETTER
                found[where] = change.absolute.value
    return found


@pytest.mark.parametrize("classes", [2, 5])
def test_the_eval_config_tests_overall_at_alpha_and_each_class_at_alpha_over_classes(classes):
    config = make_eval_config(GateConfig(accuracy_threshold=0.7, alpha=0.1), classes)
    assert _paired_thresholds(config) == pytest.approx({"overall": 0.1, "class": 0.1 / classes})
    accuracy = [m for m in config.metrics_specs[0].metrics if '"accuracy"' in m.config]
    (threshold,) = accuracy[0].per_slice_thresholds
    assert threshold.threshold.value_threshold.lower_bound.value == pytest.approx(0.7)
    assert not threshold.threshold.HasField("change_threshold")  # no accuracy margin any more
    paired = [m for m in config.metrics_specs[0].metrics if METRIC_NAME in m.config][0]
    assert (paired.module, paired.class_name) == (PairedWorse.__module__, "PairedWorse")


def test_the_paired_metric_computes_nothing_without_a_baseline():
    config = make_eval_config(GateConfig(), 3)
    assert PairedWorse().computations(eval_config=config, model_names=[""]) == []
    with_baseline = tfma.utils.update_eval_config_with_defaults(config, has_baseline=True)
    computations = PairedWorse().computations(eval_config=with_baseline,
                                              model_names=["candidate", "baseline"])
    (computation,) = computations
    assert {k.name for k in computation.keys} == {METRIC_NAME, f"{METRIC_NAME}_lost",
                                                   f"{METRIC_NAME}_gained"}
    assert all(k.is_diff and k.model_name == "candidate" for k in computation.keys)


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, math.nan])
def test_a_level_outside_zero_one_is_refused(alpha):
    with pytest.raises(ValueError, match="alpha must be in"):
        GateConfig(alpha=alpha)
