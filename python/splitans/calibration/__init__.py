"""Calibrating a fitted codec for an accuracy budget: the smallest codec whose accuracy drop is
within the budget with a stated confidence.

    codec = splitans.calibrate(activations, tail, labels, budget=0.2)
    print(codec.calibration)            # drop, its interval, expected size, what more data would confirm

How (a *learn then test* procedure; Angelopoulos, Bates, Candès, Jordan and Lei, 2021):

1. The calibration samples are split at random into a *selection* part (a tenth by default, at
   least 200 samples or a quarter) and a *test* part. Everything that decides what is tested is
   taken from the selection part alone: the quantizer parameters (clip ranges, trained levels,
   per-channel bits from the gradients' Fisher information), every candidate's size (a context
   model fitted to some selection samples, sizes measured on others), the ranking by the
   divergence (KL) of the model's outputs, the chains, their order, their number and where each
   one starts. The test part only answers the tests.
2. Candidates (bit widths × clipping × per tensor or per channel × the quantizer options) form
   *families*: the base grid (uniform levels, min/max or percentile clipping, per tensor or per
   channel) and one per quantizer option. Within a family, a *configuration* (everything but the
   bit width) is a chain from its most bits to its fewest. The chains tested are the base grid's
   two configurations, and each option's one, predicted smallest where the test would just
   confirm the budget.
3. The level ``1 - confidence`` is shared before anything is tested: half to the base grid's
   chains, half equally among the quantizer options that *apply to these samples* (asked for or
   not). Asking for more options therefore never lowers the level of any test, and the codec
   returned with more options is never larger than with fewer (nor than the base grid's own).
4. Each chain is tested by a *fallback procedure* (Wiens 2003): its nodes are the anchor (the
   most faithful base candidate), then the chain from one bit width more faithful than the
   edge the selection part predicts, down to its fewest bits. The chain's level is spread over
   its nodes (a quarter on the anchor, half on the first node of the chain, a quarter on the
   next); a node is tested at its own share plus the whole level of the node before it when that
   one was confirmed. So a confirmed chain runs at its full level, and one noisy failure does not
   end it: the next node still has its own share. The fallback procedure is a closed test of
   weighted Bonferroni tests, so each chain's familywise error is at most its level, under any
   dependence between the tests; over the chains, Bonferroni: with probability at least
   ``confidence``, *every* candidate confirmed has a drop (on samples from the calibration
   distribution) within the budget.
5. Of the confirmed candidates, the one whose codec (refitted to more selection samples) is
   smallest on test-part samples is returned; sizes need no labels, and the guarantee covers
   every confirmed candidate at once, so this pick cannot weaken it. When nothing is confirmed,
   the anchor comes back with ``confirmed`` False and a `CalibrationWarning`: no guarantee then.

The test is paired — the same samples with and without compression. For ``metric="accuracy"``
the counts are ``b`` (right before, wrong after) and ``c`` (wrong before, right after), and the
drop is ``(b - c) / n``. Its p-value is that of Tango's score test for a difference of paired
proportions (Tango 1998; at a margin of 0 it is McNemar's) when ``n × budget`` is at least
`EXACT_BELOW`; below, where the score test's normal approximation is too liberal, an exact
unconditional test (Berger and Boos 1994). For ``metric="agreement"`` the drop is the fraction
of predictions that change, with an exact binomial test.

What is reported comes from the test part only (the selection part picked what to test, so its
counts of a chosen candidate are biased), and intervals are *selection-adjusted*: at level
``1 - (1 - confidence) / m`` for the ``m`` candidates the chains could have returned, so they
hold for the returned one however it was picked. The point estimate is the chosen candidate's
test-part drop, which the choice biases downward (it was chosen because it passed). The report
also says, for the smallest candidate tested and not confirmed, how many paired samples would
confirm it with 80% probability if its observed rates were the true ones.

Nothing here is needed to decode: the result is an ordinary ``splitans.Codec``.

The package: `stats` (the tests and intervals), `chains` (how the level is shared and a chain
tested), `search` (`Search` and `calibrate`), `data` (samples in, logits out), `result`
(`CalibrationReport`). `Search` is the public way to ask one calibration several questions
(``splitans report`` asks it once per set of options); ``splitans.calibrate`` is the one-call
form. The package is ``calibration``, not ``calibrate``, so that ``splitans.calibrate`` stays
the function.
"""

from .chains import BASE_CHAINS, BASE_SHARE, NODE_WEIGHTS, OPTION_CHAINS, fallback, run_chains
from .result import CalibrationReport, CalibrationWarning
from .search import OPTIONS, Search, calibrate
from .stats import (
    EXACT_BELOW,
    EXACT_GAMMA,
    POWER,
    binomial_test,
    clopper_pearson,
    exact_drop_test,
    paired_drop_interval,
    paired_drop_test,
    prediction_interval,
    samples_to_confirm,
)

__all__ = [
    "CalibrationReport",
    "CalibrationWarning",
    "EXACT_BELOW",
    "OPTIONS",
    "Search",
    "BASE_CHAINS",
    "BASE_SHARE",
    "NODE_WEIGHTS",
    "OPTION_CHAINS",
    "EXACT_GAMMA",
    "POWER",
    "binomial_test",
    "calibrate",
    "clopper_pearson",
    "exact_drop_test",
    "fallback",
    "paired_drop_interval",
    "paired_drop_test",
    "prediction_interval",
    "run_chains",
    "samples_to_confirm",
]
