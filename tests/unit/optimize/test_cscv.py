"""PBO by CSCV: against a brute-force CSCV written here, on noise and a planted edge, the
splits behind each logit, seeded subsets, errors. Every Sharpe ratio is per period."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pytest

from core.errors import ValidationError
from optimize.cscv import cscv_splits, pbo
from optimize.overfitting import deflated_sharpe


def sharpes_of(matrix: np.ndarray) -> np.ndarray:
    return matrix.mean(axis=0) / matrix.std(axis=0, ddof=1)


# --- Simulations ---------------------------------------------------------------------------


def test_pbo_of_pure_noise_is_a_coin_flip_and_its_best_is_not_significant():
    results = []
    for seed in range(6):
        returns = np.random.default_rng(seed).normal(0.0, 0.01, (1000, 200))
        srs = sharpes_of(returns)
        best = int(np.argmax(srs))
        assert deflated_sharpe(returns[:, best], srs).dsr < 0.95
        results.append(pbo(returns))
    # One history's splits are strongly dependent, so a single PBO scatters (0.3..0.7);
    # the mean over histories is close to 0.5.
    assert 0.35 < np.mean([r.pbo for r in results]) < 0.65
    assert 0.35 < np.mean([r.prob_oos_loss for r in results]) < 0.65
    assert all(r.n_splits == 12_870 for r in results)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pbo_and_dsr_recognise_a_planted_edge(seed):
    rng = np.random.default_rng(seed)
    returns = rng.normal(0.0, 0.01, (1000, 200))
    returns[:, 42] += 0.0025  # a real per-period Sharpe of 0.25 among noise
    srs = sharpes_of(returns)
    assert int(np.argmax(srs)) == 42
    result = pbo(returns)
    assert result.pbo < 0.15
    assert result.prob_oos_loss < 0.15
    assert float(result.oos_sharpe.mean()) > 0.1
    assert deflated_sharpe(returns[:, 42], srs).dsr > 0.95


# --- Against a brute-force CSCV ------------------------------------------------------------


def naive_split(
    returns: np.ndarray, n_blocks: int, chosen: Sequence[int]
) -> tuple[float, float, float]:
    """Logit, IS and OOS Sharpe of the IS-best of one split (``chosen``: its IS blocks)."""
    stats = pytest.importorskip("scipy.stats")
    blocks = np.array_split(np.arange(len(returns)), n_blocks)

    def srs(rows: np.ndarray) -> np.ndarray:
        part = returns[rows]
        std = part.std(axis=0, ddof=1)
        return np.where(std == 0, 0.0, part.mean(axis=0) / np.where(std == 0, 1, std))

    is_rows = np.concatenate([blocks[b] for b in chosen])
    oos_rows = np.concatenate([blocks[b] for b in range(n_blocks) if b not in chosen])
    sr_is, sr_oos = srs(is_rows), srs(oos_rows)
    best = int(np.argmax(sr_is))
    w = stats.rankdata(sr_oos)[best] / (returns.shape[1] + 1)
    return math.log(w / (1 - w)), float(sr_is[best]), float(sr_oos[best])


def naive_cscv(returns: np.ndarray, n_blocks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits, IS and OOS Sharpe of the IS-best per split, one split at a time."""
    splits = itertools.combinations(range(n_blocks), n_blocks // 2)
    per_split = [naive_split(returns, n_blocks, chosen) for chosen in splits]
    logits, is_best, oos_best = (np.array(column) for column in zip(*per_split, strict=True))
    return logits, is_best, oos_best


@pytest.mark.parametrize(("periods", "n_blocks"), [(48, 6), (50, 6), (73, 8)])
def test_pbo_equals_a_brute_force_cscv(periods, n_blocks):
    rng = np.random.default_rng(periods)
    # Mostly losing trials, so a flat one (Sharpe 0) is often the in-sample best; two flat
    # trials tie out of sample and take their average rank.
    drift = np.array([-0.003, -0.002, 0.0, 0.0, -0.001, 0.0, 0.0005])
    returns = rng.normal(0.0, 0.01, (periods, 7)) + drift
    returns[:, 3] = 0.0
    returns[:, 5] = 0.0
    logits, is_best, oos_best = naive_cscv(returns, n_blocks)
    result = pbo(returns, n_blocks=n_blocks)
    assert result.n_splits == math.comb(n_blocks, n_blocks // 2) == len(logits)
    np.testing.assert_allclose(result.logits, logits, rtol=1e-9)
    np.testing.assert_allclose(result.is_sharpe, is_best, rtol=1e-9)
    np.testing.assert_allclose(result.oos_sharpe, oos_best, rtol=1e-9)
    assert result.pbo == pytest.approx(np.mean(logits <= 0))
    assert result.prob_oos_loss == pytest.approx(np.mean(oos_best < 0))
    slope, intercept = np.polyfit(is_best, oos_best, 1)
    assert result.degradation_slope == pytest.approx(slope)
    assert result.degradation_intercept == pytest.approx(intercept)


def test_pbo_samples_a_seeded_subset_of_splits():
    returns = np.random.default_rng(9).normal(0.0, 0.01, (400, 20))
    full = pbo(returns, n_blocks=10)
    some = pbo(returns, n_blocks=10, max_splits=50, seed=1)
    assert some.n_splits == 50
    assert np.array_equal(some.logits, pbo(returns, n_blocks=10, max_splits=50, seed=1).logits)
    assert not np.array_equal(some.logits, pbo(returns, n_blocks=10, max_splits=50).logits)
    # A subset's logits are some of the full set's (same splits, same statistics).
    assert np.isin(np.round(some.logits, 12), np.round(full.logits, 12)).all()
    everything = pbo(returns, n_blocks=10, max_splits=10_000)
    assert everything.n_splits == 252 and np.array_equal(everything.logits, full.logits)
    huge = pbo(np.random.default_rng(9).normal(0, 1, (64, 5)), n_blocks=32, max_splits=300)
    assert huge.n_splits == 300 and huge.logits.shape == (300,)


def test_random_splits_of_many_blocks_are_distinct_halves():
    # C(32, 16) is too many to enumerate, so splits are drawn one by one: check the draw.
    masks = cscv_splits(32, max_splits=2000, seed=3)
    assert masks.shape == (2000, 32)
    assert (masks.sum(axis=1) == 16).all()
    assert len({row.tobytes() for row in masks}) == 2000
    assert np.array_equal(masks, cscv_splits(32, max_splits=2000, seed=3))
    assert 0.45 < masks.mean(axis=0).min() <= masks.mean(axis=0).max() < 0.55


def test_every_split_is_enumerated_in_order_of_its_in_sample_blocks():
    masks = cscv_splits(6)
    combos = [tuple(np.flatnonzero(row)) for row in masks]
    assert combos == list(itertools.combinations(range(6), 3))
    assert np.array_equal(cscv_splits(6, max_splits=10_000), masks)


@pytest.mark.parametrize(("periods", "n_blocks", "max_splits"), [(50, 10, 40), (60, 24, 30)])
def test_the_splits_are_the_ones_behind_each_pbo_logit(periods, n_blocks, max_splits):
    # A seeded subset of enumerated splits (C(10, 5) = 252) and drawn ones (C(24, 12) > 1e6).
    returns = np.random.default_rng(periods).normal(0.0, 0.01, (periods, 6))
    result = pbo(returns, n_blocks=n_blocks, max_splits=max_splits, seed=4)
    masks = cscv_splits(n_blocks, max_splits=max_splits, seed=4)
    assert len(masks) == result.n_splits == max_splits
    for k, mask in enumerate(masks):
        logit, is_best, oos_best = naive_split(returns, n_blocks, tuple(np.flatnonzero(mask)))
        assert result.logits[k] == pytest.approx(logit, rel=1e-9)
        assert result.is_sharpe[k] == pytest.approx(is_best, rel=1e-9)
        assert result.oos_sharpe[k] == pytest.approx(oos_best, rel=1e-9)


# --- Errors --------------------------------------------------------------------------------

RETURNS = np.random.default_rng(1).normal(0.0, 0.01, (100, 5))
WITH_NAN = RETURNS.copy()
WITH_NAN[10, 2] = np.nan


@pytest.mark.parametrize(
    ("call", "field", "words"),
    [
        (lambda: pbo(RETURNS, n_blocks=7), "n_blocks", "even"),
        (lambda: pbo(RETURNS[:20], n_blocks=16), "n_blocks", "at least 32 periods"),
        (lambda: pbo(WITH_NAN, n_blocks=4), "returns", "first at (10, 2)"),
        (lambda: pbo(RETURNS[:, :1], n_blocks=4), "returns", "at least 2 trials"),
        (lambda: pbo(RETURNS[:, 0], n_blocks=4), "returns", "2-D"),
        (lambda: pbo(RETURNS, n_blocks=4, max_splits=0), "max_splits", "at least 1"),
        (lambda: pbo(np.zeros((64, 3)), n_blocks=32), "max_splits", "pass max_splits"),
        (lambda: cscv_splits(5), "n_blocks", "even"),
        (lambda: cscv_splits(0), "n_blocks", "at least 2"),
        (lambda: cscv_splits(4, max_splits=0), "max_splits", "at least 1"),
        (lambda: cscv_splits(30), "max_splits", "pass max_splits"),
    ],
)  # fmt: skip
def test_bad_input_names_the_field_and_the_fix(call, field, words):
    with pytest.raises(ValidationError) as info:
        call()
    assert info.value.field == field
    assert words in str(info.value)
