"""Issue 19's last test: with a base pretrained in [0, 1] whose file does not say so, `imgpipe
run` with no --input-scaling reaches the seeds' recipe's accuracy (fed x / 255, same images,
epochs and weights) within 3 points, and the wrong feed does clearly worse.

The runs are `benchmarks.transfer`'s (the same comparison as a benchmark; its figures are in
benchmarks/README.md). So the check can fail, both accuracies must also be far above chance on
two unseen shapes, and detection must have said `unit`: near chance, "within 3 points" would
pass whatever the feed. About 4-5 minutes on two cores (pretraining and two pipeline runs), so
it is opt-in: `make test-opt-in`.
"""

import pytest

from benchmarks.transfer import Setup, compare

pytestmark = [pytest.mark.slow, pytest.mark.opt_in]

WITHIN = 0.03  # the 3 points
FAR_ABOVE_CHANCE = 0.8  # chance 0.5, the wrong feed 0.53; no flag measured 0.94-1.0 (README)
WRONG_FEED_LOSS = 0.2  # the wrong feed measured at chance, 0.5


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    return compare(tmp_path_factory.mktemp("transfer"), Setup())


def _ran(run: dict) -> dict:
    assert run["exit_code"] == 0, run["stdout"] + run["stderr"]
    return run


def test_no_flag_detects_unit_from_the_silent_base(comparison):
    pipeline = _ran(comparison["pipeline"])
    assert pipeline["input_scaling"].startswith("unit (detected: unit "), pipeline["input_scaling"]
    assert "base input scaling: unit (detected: unit " in pipeline["stdout"]


def test_no_flag_reaches_the_recipes_accuracy_within_3_points(comparison):
    recipe, pipeline = comparison["recipe"]["accuracy"], _ran(comparison["pipeline"])["accuracy"]
    assert comparison["pipeline"]["eval_images"] == 2 * Setup().eval_per_class
    assert recipe >= FAR_ABOVE_CHANCE, comparison["recipe"]
    assert pipeline >= FAR_ABOVE_CHANCE, pipeline
    assert abs(pipeline - recipe) <= WITHIN, (recipe, pipeline)


def test_the_wrong_feed_is_clearly_worse(comparison):
    wrong = _ran(comparison["wrong_feed"])
    assert wrong["input_scaling"].startswith("inception"), wrong["input_scaling"]
    assert wrong["accuracy"] <= comparison["pipeline"]["accuracy"] - WRONG_FEED_LOSS, wrong
