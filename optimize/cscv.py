"""The probability of backtest overfitting (PBO) by combinatorially symmetric cross-validation.

Source: Bailey, Borwein, López de Prado & Zhu (2015), "The Probability of Backtest
Overfitting". Every Sharpe ratio here is PER PERIOD (mean / std of per-period returns,
``ddof=1``), never annualized. :mod:`optimize.overfitting` re-exports :func:`pbo` and
:class:`PBOResult` beside the deflated Sharpe ratio.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from core.errors import ValidationError
from optimize.stat_checks import FLAT, finite_array, whole_number

__all__ = ["MAX_ENUMERATED_SPLITS", "PBOResult", "cscv_splits", "pbo"]

MAX_ENUMERATED_SPLITS = 1_000_000
"""Above this many CSCV splits, :func:`pbo` needs ``max_splits`` (a random subset)."""

_CHUNK = 1024  # splits evaluated at once: bounds memory to a few (chunk x trials) arrays


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class PBOResult:
    """The probability of backtest overfitting by CSCV, and the degradation it implies.

    Attributes:
        pbo: Share of splits where the in-sample best ranks in the bottom half out of
            sample (logit <= 0); about 0.5 for pure noise, near 0 for a real edge.
        logits: Per split (in the order of :func:`cscv_splits`), ln(w / (1 - w)) of the
            in-sample best's relative out-of-sample rank w = rank / (N + 1) (rank N is the
            best).
        n_splits: Splits evaluated (every C(S, S/2) one, or the ``max_splits`` subset).
        degradation_slope: OLS slope of the in-sample best's out-of-sample Sharpe on its
            in-sample Sharpe (NaN when the in-sample Sharpe never varies).
        degradation_intercept: The intercept of that regression (NaN likewise).
        prob_oos_loss: Share of splits where the in-sample best has an out-of-sample
            Sharpe below 0.
        is_sharpe: Per split, the in-sample best's in-sample per-period Sharpe.
        oos_sharpe: Per split, its out-of-sample per-period Sharpe.
    """

    pbo: float
    logits: NDArray[np.float64]
    n_splits: int
    degradation_slope: float
    degradation_intercept: float
    prob_oos_loss: float
    is_sharpe: NDArray[np.float64]
    oos_sharpe: NDArray[np.float64]


def cscv_splits(
    n_blocks: int, *, max_splits: int | None = None, seed: int = 0
) -> NDArray[np.bool_]:
    """Return the in-sample block masks CSCV evaluates: splits x blocks, True = in sample.

    Row ``k`` is the split behind ``logits[k]``, ``is_sharpe[k]`` and ``oos_sharpe[k]`` of
    :func:`pbo` called with the same ``n_blocks``, ``max_splits`` and ``seed``: use it to see
    which blocks of the history each split took in sample.

    Args:
        n_blocks: Even number of blocks S (at least 2).
        max_splits: At most this many splits, drawn at random without replacement (seeded);
            required when C(S, S/2) exceeds :data:`MAX_ENUMERATED_SPLITS`. Every split, in
            lexicographic order of the in-sample blocks, when None or not smaller.
        seed: Seed of that draw.

    Returns:
        A boolean array, one row per split, with S/2 True per row; rows distinct.

    Raises:
        ValidationError: ``n_blocks`` odd or below 2; ``max_splits`` below 1, or missing for
            a huge S.
    """
    _check_blocks(n_blocks)
    if max_splits is not None:
        whole_number(max_splits, field="max_splits", least=1)
    half = n_blocks // 2
    total = math.comb(n_blocks, half)
    rng = np.random.default_rng(seed)
    if total <= MAX_ENUMERATED_SPLITS:
        return _enumerated(n_blocks, total, max_splits, rng)
    if max_splits is None:
        raise ValidationError(
            f"n_blocks={n_blocks} gives {total:,} splits: pass max_splits (e.g. 10,000) to "
            "evaluate a seeded random subset, or use fewer blocks (16 gives 12,870)",
            field="max_splits",
        )
    return _drawn(n_blocks, max_splits, rng)


def _enumerated(
    n_blocks: int, total: int, max_splits: int | None, rng: np.random.Generator
) -> NDArray[np.bool_]:
    """Every one of the ``total`` splits, or a seeded subset of ``max_splits`` in order."""
    half = n_blocks // 2
    flat = itertools.chain.from_iterable(itertools.combinations(range(n_blocks), half))
    combos = np.fromiter(flat, dtype=np.intp, count=total * half).reshape(total, half)
    if max_splits is not None and max_splits < total:
        combos = combos[np.sort(rng.choice(total, size=max_splits, replace=False))]
    masks = np.zeros((len(combos), n_blocks), dtype=np.bool_)
    masks[np.arange(len(combos))[:, None], combos] = True
    return masks


def _drawn(n_blocks: int, max_splits: int, rng: np.random.Generator) -> NDArray[np.bool_]:
    """``max_splits`` distinct random halves, drawn one by one (too many to enumerate)."""
    seen: set[bytes] = set()
    rows: list[NDArray[np.bool_]] = []
    while len(rows) < max_splits:  # collisions are rare: total > 1e6 >= max_splits
        mask = np.zeros(n_blocks, dtype=np.bool_)
        mask[rng.permutation(n_blocks)[: n_blocks // 2]] = True
        key = mask.tobytes()
        if key not in seen:
            seen.add(key)
            rows.append(mask)
    return np.array(rows)


def _check_blocks(n_blocks: int) -> None:
    n_blocks = whole_number(n_blocks, field="n_blocks", least=2)
    if n_blocks % 2:
        raise ValidationError(
            f"n_blocks must be even (CSCV splits the blocks half and half), got {n_blocks}; "
            "the paper uses 16",
            field="n_blocks",
        )


def _check_pbo_args(matrix: NDArray[np.float64], n_blocks: int) -> None:
    periods, trials = matrix.shape
    if trials < 2:
        raise ValidationError(
            f"returns needs at least 2 trials (columns), got {trials}; rows are periods, "
            "columns trials: transpose it if it is the other way round",
            field="returns",
        )
    _check_blocks(n_blocks)
    if periods < 2 * n_blocks:
        raise ValidationError(
            f"n_blocks={n_blocks} needs at least {2 * n_blocks} periods (2 per block), "
            f"got {periods}: use fewer blocks or a longer history",
            field="n_blocks",
        )


def _half_sharpes(
    sums: NDArray[np.float64],
    sumsq: NDArray[np.float64],
    count: NDArray[np.float64],
    center: NDArray[np.float64],
    scale: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Per-period Sharpe ratios (ddof=1) from sums of centred returns and their squares."""
    n = count[:, None]
    mean = sums / n
    var = np.maximum(sumsq - sums * mean, 0.0) / (n - 1)
    std = np.sqrt(var)
    flat = std <= FLAT * scale
    return np.where(flat, 0.0, (mean + center) / np.where(flat, 1.0, std))


def _best_per_split(
    masks: NDArray[np.bool_],
    block_sum: NDArray[np.float64],
    block_sq: NDArray[np.float64],
    block_n: NDArray[np.float64],
    center: NDArray[np.float64],
    scale: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Return the IS-best's IS Sharpe, OOS Sharpe and OOS rank (1 = worst) per split."""
    total_sum, total_sq, total_n = block_sum.sum(0), block_sq.sum(0), block_n.sum()
    out = np.empty((3, len(masks)))
    for start in range(0, len(masks), _CHUNK):
        chunk = masks[start : start + _CHUNK].astype(np.float64)
        is_n = chunk @ block_n
        is_sum, is_sq = chunk @ block_sum, chunk @ block_sq
        sr_is = _half_sharpes(is_sum, is_sq, is_n, center, scale)
        sr_oos = _half_sharpes(total_sum - is_sum, total_sq - is_sq, total_n - is_n, center, scale)
        rows = np.arange(len(chunk))
        best = np.argmax(sr_is, axis=1)  # ties: the first trial
        oos_best = sr_oos[rows, best][:, None]
        below = (sr_oos < oos_best).sum(axis=1)
        ties = (sr_oos == oos_best).sum(axis=1)
        stop = start + len(chunk)
        out[0, start:stop] = sr_is[rows, best]
        out[1, start:stop] = oos_best[:, 0]
        out[2, start:stop] = below + (ties + 1) / 2  # ties take their average rank
    return out[0], out[1], out[2]


def pbo(
    returns: ArrayLike,
    *,
    n_blocks: int = 16,
    max_splits: int | None = None,
    seed: int = 0,
) -> PBOResult:
    """Return the probability of backtest overfitting of choosing the best trial, by CSCV.

    Combinatorially symmetric cross-validation (Bailey, Borwein, López de Prado & Zhu 2015):
    the periods are cut into ``n_blocks`` consecutive blocks (``np.array_split``: when the
    periods do not divide evenly, the first blocks are one period longer); each way of
    taking half of the blocks as in-sample (the rest out-of-sample) is a split. In each
    split the trial with the best in-sample per-period Sharpe ratio is ranked out of sample;
    PBO is the share of splits where it lands in the bottom half (logit <= 0).

    Per-block sums of returns and of their squares are computed once, so each split's
    Sharpe ratios come from block aggregates (12,870 splits x 1,000 trials in seconds).
    A flat trial (no variance in a half) has Sharpe 0 there.

    Args:
        returns: T x N matrix of per-period returns: rows periods, one column per trial.
        n_blocks: Even number of blocks S (the paper uses 16: C(16, 8) = 12,870 splits);
            needs T >= 2 S.
        max_splits: Evaluate only this many splits, drawn at random without replacement
            (seeded); required when C(S, S/2) exceeds :data:`MAX_ENUMERATED_SPLITS`.
        seed: Seed of that draw.

    Returns:
        A :class:`PBOResult`.

    Raises:
        ValidationError: ``returns`` not a 2-D matrix, with a NaN or infinite value or
            fewer than 2 columns; ``n_blocks`` odd, below 2 or above T / 2; ``max_splits``
            below 1, or missing for a huge S.
    """
    matrix = finite_array(returns, field="returns", ndim=2)
    _check_pbo_args(matrix, n_blocks)
    masks = cscv_splits(n_blocks, max_splits=max_splits, seed=seed)
    # Centre each trial by its own mean before summing squares: keeps the variances exact.
    center = matrix.mean(axis=0)
    scale = np.abs(matrix).max(axis=0)
    dev = matrix - center
    starts = np.array([len(b) for b in np.array_split(np.arange(len(matrix)), n_blocks)])
    offsets = np.concatenate(([0], np.cumsum(starts)[:-1]))
    block_sum = np.add.reduceat(dev, offsets, axis=0)
    block_sq = np.add.reduceat(dev * dev, offsets, axis=0)
    is_sr, oos_sr, rank = _best_per_split(
        masks, block_sum, block_sq, starts.astype(np.float64), center, scale
    )
    w = rank / (matrix.shape[1] + 1)
    logits = np.log(w / (1 - w))
    slope, intercept = _ols(is_sr, oos_sr)
    return PBOResult(
        pbo=float(np.mean(logits <= 0)),
        logits=logits,
        n_splits=len(masks),
        degradation_slope=slope,
        degradation_intercept=intercept,
        prob_oos_loss=float(np.mean(oos_sr < 0)),
        is_sharpe=is_sr,
        oos_sharpe=oos_sr,
    )


def _ols(x: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[float, float]:
    dx = x - x.mean()
    sxx = float(dx @ dx)
    if sxx <= 1e-300:
        return math.nan, math.nan
    slope = float(dx @ (y - y.mean())) / sxx
    return slope, float(y.mean()) - slope * float(x.mean())
