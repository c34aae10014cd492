"""How much of a backtest's best result is luck: Deflated Sharpe Ratio and PBO.

Every Sharpe ratio here is PER PERIOD (mean / std of per-period returns, ``ddof=1``), never
annualized; kurtosis is NOT excess (3 for a normal). ``strategies.metrics`` reports excess
kurtosis: add 3 before passing it here. Sources:

* Bailey & López de Prado (2012), "The Sharpe Ratio Efficient Frontier": the probabilistic
  Sharpe ratio (PSR) and the minimum track record length (MinTRL).
* Bailey & López de Prado (2014), "The Deflated Sharpe Ratio": the expected maximum Sharpe
  ratio of N trials (SR0) and DSR = PSR(SR0).
* Bailey, Borwein, López de Prado & Zhu (2015), "The Probability of Backtest Overfitting":
  combinatorially symmetric cross-validation (CSCV) and PBO, in :mod:`optimize.cscv` and
  re-exported here (:func:`pbo`, :class:`PBOResult`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import ArrayLike, NDArray

from core.errors import ValidationError
from optimize.cscv import MAX_ENUMERATED_SPLITS, PBOResult, pbo
from optimize.stat_checks import finite_array, is_flat, whole_number

__all__ = [
    "EULER_GAMMA",
    "MAX_ENUMERATED_SPLITS",
    "DeflatedSharpe",
    "PBOResult",
    "deflated_sharpe",
    "expected_max_sharpe",
    "min_track_record_length",
    "pbo",
    "probabilistic_sharpe",
    "sharpe",
    "skew_kurtosis",
    "verdict",
]

EULER_GAMMA = 0.5772156649015329
"""The Euler-Mascheroni constant."""

_NORMAL = NormalDist()


@dataclass(frozen=True, slots=True, kw_only=True)
class DeflatedSharpe:
    """The Deflated Sharpe Ratio of a chosen trial, with what went into it.

    Attributes:
        dsr: P(true Sharpe > sr0), in 0..1; 0.95 or more is significant at 95 %.
        sr: The chosen trial's per-period Sharpe ratio.
        sr0: The expected maximum per-period Sharpe ratio of ``n_trials`` skill-less trials.
        n_trials: Independent trials the choice was made from.
        var_sharpe: Variance of the per-period Sharpe ratios over the trials.
        skew: Skewness of the chosen trial's returns.
        kurt: Kurtosis (not excess) of the chosen trial's returns.
        n_obs: Number of returns of the chosen trial.
    """

    dsr: float
    sr: float
    sr0: float
    n_trials: float
    var_sharpe: float
    skew: float
    kurt: float
    n_obs: int


def _returns(returns: ArrayLike, *, field: str = "returns", least: int = 2) -> NDArray[np.float64]:
    arr = finite_array(returns, field=field, ndim=1)
    if arr.size < least:
        raise ValidationError(
            f"{field} needs at least {least} observations, got {arr.size}", field=field
        )
    return arr


def _number(value: float, *, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ValidationError(f"{field} must be a number, got {value!r}", field=field)
    out = float(value)
    if not math.isfinite(out):
        raise ValidationError(f"{field} must be finite, got {out}", field=field)
    return out


def sharpe(returns: ArrayLike) -> float:
    """Return the per-period Sharpe ratio, mean / std (``ddof=1``), of ``returns``.

    Args:
        returns: Per-period (excess) returns, at least 2, all finite.

    Returns:
        The per-period Sharpe ratio; 0 for a flat series (no variance, e.g. never in the
        market), whose ratio is undefined. Multiply by sqrt(periods per year) to annualize.

    Raises:
        ValidationError: fewer than 2 returns, or a NaN or infinite one (field ``returns``).
    """
    arr = _returns(returns)
    std = float(arr.std(ddof=1))
    if is_flat(std, float(np.abs(arr).max())):
        return 0.0
    return float(arr.mean()) / std


def skew_kurtosis(returns: ArrayLike) -> tuple[float, float]:
    """Return the skewness and the kurtosis (not excess; 3 for a normal) of ``returns``.

    Population (biased) estimators, as in the papers: with central moments
    ``m_k = mean((r - mean(r))**k)``, skew = m3 / m2**1.5 and kurt = m4 / m2**2 (scipy's
    ``skew(bias=True)`` and ``kurtosis(fisher=False, bias=True)``).

    Args:
        returns: Per-period returns, at least 3, all finite, not all equal.

    Returns:
        ``(skew, kurt)``.

    Raises:
        ValidationError: fewer than 3 returns, a NaN or infinite one, or a flat series
            (field ``returns``).
    """
    arr = _returns(returns, least=3)
    dev = arr - arr.mean()
    m2 = float(np.mean(dev**2))
    if is_flat(math.sqrt(m2), float(np.abs(arr).max())):
        raise ValidationError(
            "returns are flat (no variance): skewness and kurtosis are undefined",
            field="returns",
        )
    return float(np.mean(dev**3)) / m2**1.5, float(np.mean(dev**4)) / m2**2


def expected_max_sharpe(n_trials: float, var_sharpe: float) -> float:
    """Return SR0, the expected maximum Sharpe ratio of ``n_trials`` skill-less trials.

    SR0 = sqrt(V) * ((1 - g) Z^-1(1 - 1/N) + g Z^-1(1 - 1/(N e))), g the Euler-Mascheroni
    constant (Bailey & López de Prado 2014, eq. 4): the approximate expected maximum of N
    independent normal Sharpe estimates of mean 0 and variance V.

    Args:
        n_trials: Number of independent trials N (>= 1; need not be whole, e.g. an
            effective number of trials). One trial selects nothing: SR0 is 0.
        var_sharpe: Variance V of the trials' per-period Sharpe ratios (>= 0).

    Returns:
        SR0, per period when V is of per-period Sharpe ratios.

    Raises:
        ValidationError: ``n_trials`` below 1 or ``var_sharpe`` negative or not finite.
    """
    n = _number(n_trials, field="n_trials")
    var = _number(var_sharpe, field="var_sharpe")
    if n < 1:
        raise ValidationError(f"n_trials must be at least 1, got {n}", field="n_trials")
    if var < 0:
        raise ValidationError(f"var_sharpe must be >= 0, got {var}", field="var_sharpe")
    if n == 1:
        return 0.0
    z = (1 - EULER_GAMMA) * _NORMAL.inv_cdf(1 - 1 / n)
    z += EULER_GAMMA * _NORMAL.inv_cdf(1 - 1 / (n * math.e))
    return math.sqrt(var) * z


def _sharpe_variance_term(sr: float, skew: float, kurt: float) -> float:
    """1 - skew SR + (kurt - 1) / 4 SR^2: (T - 1) times the variance of the SR estimate."""
    skew = _number(skew, field="skew")
    kurt = _number(kurt, field="kurt")
    # Pearson's inequality: every distribution (and every sample's population moments) has
    # kurt >= 1 + skew^2. Below it the moments are impossible, most often excess kurtosis.
    if kurt < 1 + skew * skew - 1e-9:
        raise ValidationError(
            f"kurt={kurt} is impossible with skew={skew} (kurtosis is at least 1 + skew**2); "
            "pass the kurtosis itself (3 for a normal), not the excess kurtosis",
            field="kurt",
        )
    return max(1 - skew * sr + (kurt - 1) / 4 * sr * sr, 0.0)


def probabilistic_sharpe(
    sr: float, benchmark: float = 0.0, *, n_obs: int, skew: float = 0.0, kurt: float = 3.0
) -> float:
    """Return PSR, the probability that the true Sharpe ratio exceeds ``benchmark``.

    PSR = Phi((SR - SR*) sqrt(T - 1) / sqrt(1 - skew SR + (kurt - 1) / 4 SR^2))
    (Bailey & López de Prado 2012). With ``benchmark`` = SR0 of
    :func:`expected_max_sharpe` it is the Deflated Sharpe Ratio.

    Args:
        sr: Observed per-period Sharpe ratio.
        benchmark: Per-period Sharpe ratio SR* to beat.
        n_obs: Number of returns T behind ``sr`` (>= 2).
        skew: Skewness of the returns.
        kurt: Kurtosis of the returns, not excess (3 for a normal).

    Returns:
        PSR in 0..1.

    Raises:
        ValidationError: a non-finite input, ``n_obs`` below 2, or ``kurt`` below
            1 + skew**2 (usually excess kurtosis passed by mistake).
    """
    sr = _number(sr, field="sr")
    benchmark = _number(benchmark, field="benchmark")
    t = whole_number(n_obs, field="n_obs", least=2)
    term = _sharpe_variance_term(sr, skew, kurt)
    gap = sr - benchmark
    if term == 0.0:  # a degenerate two-point distribution: no estimation error left
        return 0.5 if gap == 0 else float(gap > 0)
    return _NORMAL.cdf(gap * math.sqrt(t - 1) / math.sqrt(term))


def deflated_sharpe(
    returns: ArrayLike,
    trial_sharpes: Sequence[float] | ArrayLike | None = None,
    *,
    n_trials: float | None = None,
    var_sharpe: float | None = None,
) -> DeflatedSharpe:
    """Return the Deflated Sharpe Ratio of the chosen trial's ``returns``.

    DSR = PSR(SR0): the probability that the chosen trial's true Sharpe ratio beats the best
    one expected from ``n_trials`` skill-less trials (Bailey & López de Prado 2014). Give
    either the per-period Sharpe ratios of every trial tried (the chosen one included), or
    ``n_trials`` and ``var_sharpe`` (e.g. an effective number of independent trials).

    Args:
        returns: The chosen trial's per-period returns (at least 3, finite, not flat).
        trial_sharpes: Per-period Sharpe ratios of all the trials (at least 2).
        n_trials: Number of independent trials, instead of ``trial_sharpes``.
        var_sharpe: Variance of the trials' per-period Sharpe ratios, with ``n_trials``.

    Returns:
        A :class:`DeflatedSharpe`.

    Raises:
        ValidationError: bad ``returns``; both or neither way of describing the trials;
            fewer than 2 trial Sharpe ratios or a non-finite one.
    """
    arr = _returns(returns, least=3)
    if trial_sharpes is not None:
        if n_trials is not None or var_sharpe is not None:
            raise ValidationError(
                "pass either trial_sharpes or n_trials and var_sharpe, not both",
                field="trial_sharpes",
            )
        trials = _returns(trial_sharpes, field="trial_sharpes")
        n, var = float(trials.size), float(trials.var(ddof=1))
    elif n_trials is None or var_sharpe is None:
        raise ValidationError(
            "describe the trials: pass trial_sharpes (every trial's per-period Sharpe ratio) "
            "or both n_trials and var_sharpe",
            field="n_trials" if n_trials is None else "var_sharpe",
        )
    else:
        n, var = n_trials, var_sharpe
    sr0 = expected_max_sharpe(n, var)  # validates n and var
    sr = sharpe(arr)
    skew, kurt = skew_kurtosis(arr)
    dsr = probabilistic_sharpe(sr, sr0, n_obs=arr.size, skew=skew, kurt=kurt)
    return DeflatedSharpe(
        dsr=dsr, sr=sr, sr0=sr0, n_trials=float(n), var_sharpe=float(var), skew=skew, kurt=kurt,
        n_obs=int(arr.size),
    )  # fmt: skip


def min_track_record_length(
    sr: float,
    benchmark: float = 0.0,
    *,
    skew: float = 0.0,
    kurt: float = 3.0,
    alpha: float = 0.05,
) -> float:
    """Return MinTRL, the returns needed for PSR(``benchmark``) to reach 1 - ``alpha``.

    MinTRL = 1 + (1 - skew SR + (kurt - 1) / 4 SR^2) (Z_{1-alpha} / (SR - SR*))^2
    (Bailey & López de Prado 2012), in periods of the returns behind ``sr``.

    Args:
        sr: Observed per-period Sharpe ratio.
        benchmark: Per-period Sharpe ratio SR* to beat.
        skew: Skewness of the returns.
        kurt: Kurtosis of the returns, not excess (3 for a normal).
        alpha: Significance level, in (0, 1).

    Returns:
        The minimum number of observations (a float; round up); ``math.inf`` when ``sr``
        does not exceed ``benchmark``, since no track record would then be enough.

    Raises:
        ValidationError: a non-finite input, ``alpha`` outside (0, 1), or ``kurt`` below
            1 + skew**2.
    """
    sr = _number(sr, field="sr")
    benchmark = _number(benchmark, field="benchmark")
    alpha = _number(alpha, field="alpha")
    if not 0 < alpha < 1:
        raise ValidationError(f"alpha must be in (0, 1), e.g. 0.05; got {alpha}", field="alpha")
    term = _sharpe_variance_term(sr, skew, kurt)
    if sr <= benchmark:
        return math.inf
    return 1 + term * (_NORMAL.inv_cdf(1 - alpha) / (sr - benchmark)) ** 2


def verdict(
    result: DeflatedSharpe,
    *,
    pbo: PBOResult | float | None = None,
    periods_per_year: float | None = None,
    alpha: float = 0.05,
) -> str:
    """Return one plain line saying whether the best result survives the search.

    E.g. ``"best Sharpe 1.90 (annualized) in-sample over 4,851 trials; deflated 0.41: not
    significant; PBO 0.62: likely overfit"``. PBO reads "likely overfit" from 0.5 (the
    paper's coin flip), "possibly overfit" above 0.1, "overfit unlikely" otherwise.

    Args:
        result: The chosen trial's :class:`DeflatedSharpe`.
        pbo: Its :class:`PBOResult` (or the PBO itself), when computed.
        periods_per_year: Annualize the displayed Sharpe ratio (e.g. 252 for daily
            returns); None shows it per period. Only the display changes.
        alpha: Significance level: significant when DSR >= 1 - alpha.

    Returns:
        The line, without a trailing newline.

    Raises:
        ValidationError: ``alpha`` outside (0, 1) or ``periods_per_year`` not positive.
    """
    alpha = _number(alpha, field="alpha")
    if not 0 < alpha < 1:
        raise ValidationError(f"alpha must be in (0, 1), e.g. 0.05; got {alpha}", field="alpha")
    shown, unit = result.sr, "per period"
    if periods_per_year is not None:
        ppy = _number(periods_per_year, field="periods_per_year")
        if ppy <= 0:
            raise ValidationError(
                f"periods_per_year must be > 0 (252 for daily bars), got {ppy}",
                field="periods_per_year",
            )
        shown, unit = result.sr * math.sqrt(ppy), "annualized"
    n = result.n_trials
    trials = f"{int(n):,}" if float(n).is_integer() else f"{n:,.1f}"
    noun = "trial" if n == 1 else "trials"
    level = f"{(1 - alpha) * 100:g}%"
    judged = f"significant at {level}" if result.dsr >= 1 - alpha else "not significant"
    line = (
        f"best Sharpe {shown:.2f} ({unit}) in-sample over {trials} {noun}; "
        f"deflated {result.dsr:.2f}: {judged}"
    )
    if pbo is not None:
        p = pbo.pbo if isinstance(pbo, PBOResult) else _number(pbo, field="pbo")
        line += f"; PBO {p:.2f}: {_overfit_label(p)}"
    return line


def _overfit_label(p: float) -> str:
    if p >= 0.5:
        return "likely overfit"
    return "possibly overfit" if p > 0.1 else "overfit unlikely"
