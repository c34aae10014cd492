"""Overfitting statistics: published figures, simulations, edge cases, errors (PBO by CSCV
is tested in test_cscv.py).

Every Sharpe ratio is per period. Expected values come from the papers (cited where used),
from independent computations (scipy, Monte Carlo), or from the module's own identities
(PSR at MinTRL observations is 1 - alpha).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from core.errors import ValidationError
from optimize.overfitting import (
    DeflatedSharpe,
    deflated_sharpe,
    expected_max_sharpe,
    min_track_record_length,
    pbo,
    probabilistic_sharpe,
    sharpe,
    skew_kurtosis,
    verdict,
)


def sharpes_of(matrix: np.ndarray) -> np.ndarray:
    return matrix.mean(axis=0) / matrix.std(axis=0, ddof=1)


# --- Published figures ---------------------------------------------------------------------


def test_deflated_sharpe_matches_the_papers_numerical_example():
    # Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", numerical example: after
    # N = 100 independent trials the best strategy has an annualized SR of 2.5 over 5 years
    # of daily returns (T = 1250, 250 a year), skew -3, kurtosis 10, and the variance of the
    # trials' annualized SRs is 0.5. The paper converts to daily figures (SR / sqrt(250),
    # V / 250) and reports SR0 ~ 0.1132 (per day; ~1.79 annualized) and DSR ~ 0.9004.
    sr = 2.5 / math.sqrt(250)
    sr0 = expected_max_sharpe(100, 0.5 / 250)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    dsr = probabilistic_sharpe(sr, sr0, n_obs=1250, skew=-3.0, kurt=10.0)
    assert dsr == pytest.approx(0.9004, abs=5e-5)
    # Same figures with normal returns instead: non-normality is what costs significance.
    assert probabilistic_sharpe(sr, sr0, n_obs=1250) > dsr


def test_expected_max_sharpe_scales_with_the_sharpe_dispersion():
    # SR0 = sqrt(V) * E[max of N standard normals]: doubling sqrt(V) doubles it.
    assert expected_max_sharpe(100, 4.0) == pytest.approx(2 * expected_max_sharpe(100, 1.0))
    assert expected_max_sharpe(100, 0.0) == 0.0
    assert expected_max_sharpe(1, 1.0) == 0.0  # one trial selects nothing
    values = [expected_max_sharpe(n, 1.0) for n in (2, 10, 100, 1000, 10_000)]
    assert values == sorted(values)


# --- Simulations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "reps", "rel"), [(10, 40_000, 0.035), (100, 10_000, 0.02), (1000, 2_000, 0.015)]
)
def test_expected_max_of_standard_normals_matches_simulation(n, reps, rel):
    # The formula is an approximation (Bailey & López de Prado 2014), better for large N.
    rng = np.random.default_rng(n)
    simulated = rng.standard_normal((reps, n)).max(axis=1).mean()
    assert expected_max_sharpe(n, 1.0) == pytest.approx(simulated, rel=rel)


def test_expected_max_sharpe_matches_the_best_of_simulated_noise_strategies():
    rng = np.random.default_rng(3)
    reps, trials, periods = 300, 50, 250
    best, variances = [], []
    for _ in range(reps):
        srs = sharpes_of(rng.normal(0.0, 0.01, (periods, trials)))
        best.append(srs.max())
        variances.append(srs.var(ddof=1))
    expected = expected_max_sharpe(trials, float(np.mean(variances)))
    assert float(np.mean(best)) == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize(("true_sr", "benchmark"), [(0.1, 0.0), (0.1, 0.05), (0.02, 0.05)])
def test_psr_of_normal_returns_matches_monte_carlo(true_sr, benchmark):
    # PSR is P[SR estimate > benchmark] when the true SR is the observed one.
    rng = np.random.default_rng(7)
    periods = 250
    estimates = sharpes_of(rng.normal(true_sr, 1.0, (periods, 20_000)))
    simulated = float(np.mean(estimates > benchmark))
    assert probabilistic_sharpe(true_sr, benchmark, n_obs=periods) == pytest.approx(
        simulated, abs=0.012
    )


def test_psr_skew_and_kurtosis_terms_match_the_spread_of_skewed_returns():
    # Negated standardized gamma(4): skew -1, kurtosis 4.5. The SR estimate's spread
    # should follow sqrt((1 - skew SR + (kurt - 1)/4 SR^2) / (T - 1)), which is wider than
    # the normal formula's; read that spread off PSR: PSR(SR, SR - h) = Phi(h / spread).
    rng = np.random.default_rng(11)
    periods, shape, true_sr = 1000, 4.0, 0.1
    noise = -(rng.gamma(shape, 1.0, (10_000, periods)) - shape) / math.sqrt(shape)
    estimates = (true_sr + noise).mean(axis=1) / (true_sr + noise).std(axis=1, ddof=1)
    h = 0.01
    psr = probabilistic_sharpe(true_sr, true_sr - h, n_obs=periods, skew=-1.0, kurt=4.5)
    spread = h / _inv_phi(psr)
    normal = h / _inv_phi(probabilistic_sharpe(true_sr, true_sr - h, n_obs=periods))
    assert float(estimates.std()) == pytest.approx(spread, rel=0.03)
    assert float(estimates.std()) > normal * 1.04


def _inv_phi(p: float) -> float:
    return NormalDist().inv_cdf(p)


# --- PSR, MinTRL and DSR -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sr", "benchmark", "skew", "kurt"),
    [(0.1, 0.0, 0.0, 3.0), (0.08, 0.02, -1.5, 8.0), (0.3, 0.1, 0.5, 4.0)],
)
def test_min_track_record_length_is_where_psr_reaches_the_confidence(sr, benchmark, skew, kurt):
    need = min_track_record_length(sr, benchmark, skew=skew, kurt=kurt, alpha=0.05)
    n = math.ceil(need)
    assert probabilistic_sharpe(sr, benchmark, n_obs=n, skew=skew, kurt=kurt) >= 0.95
    assert probabilistic_sharpe(sr, benchmark, n_obs=n - 1, skew=skew, kurt=kurt) < 0.95


def test_min_track_record_length_grows_with_bad_moments_and_is_infinite_without_an_edge():
    normal = min_track_record_length(0.1)
    assert min_track_record_length(0.1, skew=-2.0, kurt=9.0) > normal
    assert min_track_record_length(0.1, alpha=0.01) > normal
    assert min_track_record_length(0.1, 0.1) == math.inf
    assert min_track_record_length(0.05, 0.1) == math.inf


def test_psr_is_a_half_at_the_benchmark_and_grows_with_the_track_record():
    assert probabilistic_sharpe(0.1, 0.1, n_obs=500, skew=-1.0, kurt=6.0) == pytest.approx(0.5)
    values = [probabilistic_sharpe(0.05, 0.0, n_obs=n) for n in (50, 200, 1000, 5000)]
    assert values == sorted(values) and values[-1] > 0.99


def test_deflated_sharpe_combines_the_chosen_returns_and_the_trials():
    rng = np.random.default_rng(5)
    returns = rng.standard_t(5, 750) * 0.01 + 0.001
    trials = rng.normal(0.0, 0.04, 30)
    result = deflated_sharpe(returns, trials)
    assert result.n_trials == 30 and result.n_obs == 750
    assert result.var_sharpe == pytest.approx(np.var(trials, ddof=1))
    assert result.sr == pytest.approx(returns.mean() / returns.std(ddof=1))
    assert result.sr0 == pytest.approx(expected_max_sharpe(30, result.var_sharpe))
    expected = probabilistic_sharpe(
        result.sr, result.sr0, n_obs=750, skew=result.skew, kurt=result.kurt
    )
    assert result.dsr == pytest.approx(expected)
    by_count = deflated_sharpe(returns, n_trials=30, var_sharpe=result.var_sharpe)
    assert by_count == result


def test_skew_and_kurtosis_are_scipys_population_estimators():
    stats = pytest.importorskip("scipy.stats")
    returns = np.random.default_rng(2).lognormal(0.0, 0.5, 400) - 1.0
    skew, kurt = skew_kurtosis(returns)
    assert skew == pytest.approx(stats.skew(returns, bias=True))
    assert kurt == pytest.approx(stats.kurtosis(returns, fisher=False, bias=True))
    normal = np.random.default_rng(4).standard_normal(200_000)
    assert skew_kurtosis(normal)[1] == pytest.approx(3.0, abs=0.05)  # not excess


def test_sharpe_is_per_period_and_zero_for_a_flat_series():
    returns = np.array([0.01, -0.02, 0.03, 0.005])
    assert sharpe(returns) == pytest.approx(np.mean(returns) / np.std(returns, ddof=1))
    assert sharpe(np.zeros(10)) == 0.0
    assert sharpe([0.001] * 10) == 0.0


# --- Verdict -------------------------------------------------------------------------------


def make_result(*, sr: float, dsr: float, n_trials: float) -> DeflatedSharpe:
    return DeflatedSharpe(
        dsr=dsr, sr=sr, sr0=0.1, n_trials=n_trials, var_sharpe=0.001, skew=0.0, kurt=3.0,
        n_obs=1000,
    )  # fmt: skip


def test_verdict_reads_as_one_plain_line():
    weak = make_result(sr=0.12, dsr=0.41, n_trials=4851)
    assert verdict(weak, periods_per_year=252) == (
        "best Sharpe 1.90 (annualized) in-sample over 4,851 trials; deflated 0.41: not significant"
    )
    strong = make_result(sr=0.2, dsr=0.97, n_trials=12)
    assert verdict(strong).endswith("deflated 0.97: significant at 95%")
    assert verdict(strong).startswith("best Sharpe 0.20 (per period)")
    assert verdict(strong, alpha=0.01).endswith("not significant")
    assert verdict(weak, pbo=0.62).endswith("; PBO 0.62: likely overfit")
    assert verdict(strong, pbo=0.03).endswith("; PBO 0.03: overfit unlikely")
    assert "over 1 trial;" in verdict(make_result(sr=0.1, dsr=0.6, n_trials=1))


def test_verdict_takes_a_pbo_result():
    returns = np.random.default_rng(0).normal(0.0, 0.01, (200, 10))
    result = pbo(returns, n_blocks=8)
    line = verdict(make_result(sr=0.1, dsr=0.5, n_trials=10), pbo=result)
    assert f"PBO {result.pbo:.2f}" in line


# --- Errors --------------------------------------------------------------------------------

RETURNS = np.random.default_rng(1).normal(0.0, 0.01, (100, 5))
CHOSEN = RETURNS[:, 0]


@pytest.mark.parametrize(
    ("call", "field", "words"),
    [
        (lambda: sharpe([0.01]), "returns", "at least 2"),
        (lambda: sharpe([0.01, math.nan, 0.02]), "returns", "NaN"),
        (lambda: skew_kurtosis(np.zeros(10)), "returns", "flat"),
        (lambda: expected_max_sharpe(0, 1.0), "n_trials", "at least 1"),
        (lambda: expected_max_sharpe(10, -1.0), "var_sharpe", ">= 0"),
        (lambda: probabilistic_sharpe(0.1, n_obs=1), "n_obs", "at least 2"),
        (lambda: probabilistic_sharpe(0.1, n_obs=100, kurt=0.0), "kurt", "excess"),
        (lambda: probabilistic_sharpe(math.nan, n_obs=100), "sr", "finite"),
        (lambda: min_track_record_length(0.1, alpha=1.5), "alpha", "(0, 1)"),
        (lambda: deflated_sharpe(CHOSEN), "n_trials", "trial_sharpes"),
        (lambda: deflated_sharpe(CHOSEN, n_trials=10), "var_sharpe", "n_trials and var_sharpe"),
        (lambda: deflated_sharpe(CHOSEN, [0.1, 0.2], n_trials=5, var_sharpe=0.1),
         "trial_sharpes", "not both"),
        (lambda: deflated_sharpe(CHOSEN, [0.1]), "trial_sharpes", "at least 2"),
        (lambda: verdict(make_result(sr=0.1, dsr=0.5, n_trials=3), periods_per_year=0),
         "periods_per_year", "252"),
    ],
)  # fmt: skip
def test_bad_input_names_the_field_and_the_fix(call, field, words):
    with pytest.raises(ValidationError) as info:
        call()
    assert info.value.field == field
    assert words in str(info.value)
    assert isinstance(info.value, ValueError)
