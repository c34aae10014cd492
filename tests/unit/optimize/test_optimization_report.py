"""The optimization report over real studies: Optuna in memory, trials evaluated by run_batch
on seeded bars, overfitting statistics and a walk-forward computed for real. The HTML is
parsed back: the heatmap's cells against the trials, the sections present or not, escaping,
and the summary's JSON round trip."""

from __future__ import annotations

import dataclasses
import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest

from core.errors import ValidationError
from optimize.cscv import pbo
from optimize.optimization_report import (
    OptimizationSummary,
    OverfittingSummary,
    WalkForwardSummary,
    heatmap_params,
    render_optimization_report,
    write_optimization_report,
)
from optimize.overfitting import deflated_sharpe, sharpe, verdict
from optimize.sweep_store import trials_table
from optimize.walkforward import Windows, grid_optimizer, walk_forward
from strategies.batch import run_batch
from strategies.engine import run_backtest
from tests.unit.optimize.conftest import daily

HOSTILE = "<script>alert('x')</script> & \"co\""
COSTS = {"commission": 0.001}


class Tags(HTMLParser):
    """Every start tag's attributes, and the text inside each element with an id."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: dict[str, str] = {}
        self._open: list[str | None] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.tags.append((tag, attributes))
        if tag not in ("rect", "circle", "line", "stop", "path", "meta"):
            self._open.append(attributes.get("id"))
            if attributes.get("id"):
                self.text.setdefault(attributes["id"], "")

    def handle_endtag(self, tag: str) -> None:
        if tag not in ("rect", "circle", "line", "stop", "path", "meta") and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for name in self._open:
            if name:
                self.text[name] += data

    def find(self, tag: str, css: str) -> list[dict[str, str]]:
        return [a for t, a in self.tags if t == tag and css in a.get("class", "").split()]


def table_rows(page: str, id_: str) -> list[list[str]]:
    """The cell texts of each row of the table with that id (header row first)."""
    table = page.split(f"id='{id_}'>", 1)[1].split("</table>", 1)[0]
    return [
        [
            html.unescape(re.sub("<[^>]+>", "", c))
            for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r)
        ]
        for r in re.findall(r"<tr>(.*?)</tr>", table)
    ]


def evaluate(
    study: optuna.Study, bars: pd.DataFrame, metrics: list[str], space: Any, n: int
) -> None:
    """Ask ``n`` trials in batches of 8 and tell each its run_batch metrics (FAIL on NaN)."""
    while len(study.trials) < n:
        asked = [study.ask() for _ in range(min(8, n - len(study.trials)))]
        table = run_batch(bars, "sma_cross", [space(t) for t in asked], **COSTS)
        for trial, row in zip(asked, table.itertuples(), strict=True):
            values = [float(getattr(row, m)) for m in metrics]
            if all(np.isfinite(values)):
                study.tell(trial, values if len(values) > 1 else values[0])
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)


def sma_space(trial: optuna.trial.Trial) -> dict[str, int]:
    return {"fast": trial.suggest_int("fast", 2, 19), "slow": trial.suggest_int("slow", 20, 120)}


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return daily(3, n=500)


@pytest.fixture(scope="module")
def study(bars: pd.DataFrame) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=1))
    evaluate(study, bars, ["sharpe"], sma_space, 48)
    return study


def overfitting_of(study: optuna.Study, bars: pd.DataFrame) -> tuple[OverfittingSummary, str]:
    """DSR over every complete trial's daily returns, PBO by CSCV, and the verdict line."""
    done = [t for t in study.trials if t.state is optuna.trial.TrialState.COMPLETE]
    returns = np.column_stack(
        [run_backtest(bars, "sma_cross", t.params, **COSTS).equity.pct_change().to_numpy()[1:]
         for t in done]
    )  # fmt: skip
    srs = np.array([sharpe(returns[:, j]) for j in range(returns.shape[1])])
    best = int(np.argmax(srs))
    deflated = deflated_sharpe(returns[:, best], srs)
    cscv = pbo(returns, n_blocks=8)
    line = verdict(deflated, pbo=cscv, periods_per_year=252)
    return OverfittingSummary.from_results(deflated, pbo=cscv, periods_per_year=252), line


def summary_of(study: optuna.Study, **extra: Any) -> OptimizationSummary:
    states = [t.state for t in study.trials]
    fields: dict[str, Any] = {
        "study_name": HOSTILE, "strategy": "sma_cross",
        "instruments": ("AAA.ASX", "<img src=x onerror=alert(1)>"), "bar_size": "1d",
        "start": "2023-01-02", "end": "2024-11-29", "sampler": "tpe",
        "n_complete": states.count(optuna.trial.TrialState.COMPLETE),
        "n_failed": states.count(optuna.trial.TrialState.FAIL),
        "seconds": 2.5, "trials_per_second": len(states) / 2.5, "overhead": 0.12,
    }  # fmt: skip
    if len(study.directions) == 1:
        fields |= {"best_params": study.best_params, "best_values": tuple(study.best_trial.values)}
    return OptimizationSummary(**(fields | extra))


@pytest.fixture(scope="module")
def report(study: optuna.Study, bars: pd.DataFrame) -> tuple[OptimizationSummary, str]:
    stats, line = overfitting_of(study, bars)
    importance = optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
    )
    summary = summary_of(study, overfitting=stats, verdict=line, importance=importance)
    return summary, render_optimization_report(summary, trials_table(study))


def complete(study: optuna.Study) -> pd.DataFrame:
    rows = [{**t.params, "value": t.values[0]} for t in study.trials if t.values is not None]
    return pd.DataFrame(rows)


# --- the page -------------------------------------------------------------------------------


def test_the_verdict_heads_the_page_and_matches_the_overfitting_statistics(report):
    summary, page = report
    tags = Tags(page)
    assert tags.text["verdict"] == summary.verdict
    assert summary.verdict.startswith("best Sharpe") and "deflated" in summary.verdict
    assert f"deflated {summary.overfitting.dsr:.2f}" in summary.verdict
    assert page.index("id='verdict'") < page.index("<h2>")  # above every section
    stats = tags.text["overfitting"]
    for label in ("DSR", "PSR", "PBO", "MinTRL", "SR0", "Degradation slope"):
        assert label in stats
    assert "0.95 or more is significant" in stats


def test_heatmap_cells_hold_the_best_trial_value_in_their_bounds(study, report):
    summary, page = report
    cells = Tags(page).find("rect", "cell")
    trials = complete(study)
    names = heatmap_params(trials[["fast", "slow"]], summary.importance)
    assert set(names) == {"fast", "slow"}
    x, y = trials[names[0]].to_numpy(float), trials[names[1]].to_numpy(float)
    covered = np.zeros(len(trials), dtype=int)
    for cell in cells:
        inside = np.ones(len(trials), dtype=bool)
        for axis, v in (("x", x), ("y", y)):
            lo, hi = float(cell[f"data-{axis}-lo"]), float(cell[f"data-{axis}-hi"])
            last = hi == v.max()  # the last bin includes its upper edge
            inside &= (v == lo) if lo == hi else (v >= lo) & ((v < hi) | (last & (v == hi)))
        assert inside.any()
        assert float(cell["data-value"]) == trials["value"][inside].max()
        assert int(cell["data-count"]) == inside.sum()
        covered += inside
    assert (covered == 1).all()  # every trial in exactly one cell
    # Independently: one cell per distinct value of a few-valued parameter, 20 equal bins of
    # a many-valued one (np.histogram's bins: the last one closed).
    per_axis = []
    for v in (x, y):
        distinct = np.unique(v)
        edges = np.histogram_bin_edges(v, 20)
        binned = np.clip(np.digitize(v, edges) - 1, 0, 19)
        per_axis.append(np.searchsorted(distinct, v) if len(distinct) <= 20 else binned)
    assert len(cells) == len(set(zip(*per_axis, strict=True)))
    assert any(len(np.unique(v)) > 20 for v in (x, y))  # the binning is exercised


def test_best_parameters_and_value_are_shown(study, report):
    _, page = report
    rows = table_rows(page, "best")
    assert rows[0] == ["Parameter", "Value"]
    assert rows[1:] == [
        *([name, str(value)] for name, value in study.best_params.items()),
        ["sharpe", f"{study.best_value:.4g}"],
    ]


def test_every_text_is_escaped(report):
    summary, page = report
    assert "<script>alert" not in page and "<img src=x" not in page
    assert page.count("<script>") == 1  # the report's own rendering check
    assert html.escape(HOSTILE) in page
    assert Tags(page).text["verdict"] == summary.verdict


def test_trials_are_charted_and_the_top_ones_listed_best_first(study, report):
    _, page = report
    tags = Tags(page)
    done = complete(study)
    assert len(tags.find("circle", "trial")) == len(done)
    assert len(tags.find("path", "series")) == 1  # the running best
    numbers = [int(row[0]) for row in table_rows(page, "top-trials")[1:]]
    values = {t.number: t.values[0] for t in study.trials if t.values is not None}
    assert len(numbers) == min(50, len(done))
    assert [values[n] for n in numbers] == sorted(values.values(), reverse=True)[: len(numbers)]
    assert len(tags.find("rect", "bar")) == 2  # importance of fast and slow


def test_single_objective_has_no_pareto_and_no_walk_forward(report):
    _, page = report
    assert "pareto-chart" not in page and "walk-forward" not in page


def test_optunas_own_trials_dataframe_draws_the_same_heatmap(study, report):
    summary, page = report
    again = render_optimization_report(summary, study.trials_dataframe())
    cells = [(c["data-x"], c["data-y"], c["data-value"]) for c in Tags(page).find("rect", "cell")]
    assert cells == [(c["data-x"], c["data-y"], c["data-value"])
                     for c in Tags(again).find("rect", "cell")]  # fmt: skip


def test_one_numeric_parameter_gives_a_note_instead_of_a_heatmap(bars):
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    evaluate(study, bars, ["sharpe"], lambda t: {"fast": t.suggest_int("fast", 2, 19)}, 8)
    page = render_optimization_report(summary_of(study), trials_table(study))
    tags = Tags(page)
    assert not tags.find("rect", "cell")
    assert "needs two numeric parameters" in tags.text["heatmap-note"]
    assert "Not computed" in tags.text["overfitting"]
    assert "No overfitting verdict" in tags.text["verdict"]


def test_two_objectives_draw_the_pareto_front(bars):
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=optuna.samplers.NSGAIISampler(seed=2)
    )
    evaluate(study, bars, ["sharpe", "volatility_pct"], sma_space, 32)
    front = tuple({"number": t.number, "params": t.params, "values": tuple(t.values)}
                  for t in study.best_trials)  # fmt: skip
    summary = summary_of(
        study, objectives=(("sharpe", "maximize"), ("volatility_pct", "minimize")), pareto=front
    )
    page = render_optimization_report(summary, trials_table(study))
    tags = Tags(page)
    assert "pareto-chart" in page and len(tags.find("circle", "front")) == len(front) > 0
    assert f"Pareto front ({len(front)} trials)" in page
    assert len(tags.find("path", "series")) == 3  # two running bests and the front
    assert OptimizationSummary.from_dict(json.loads(json.dumps(summary.to_dict()))) == summary


# --- the walk-forward -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def walked() -> WalkForwardSummary:
    grid = [{"fast": f, "slow": s} for f in (3, 5, 10) for s in (20, 40)]
    result = walk_forward(
        daily(4, n=700), "sma_cross", grid_optimizer("sma_cross", grid),
        Windows(in_sample=250, out_of_sample=100), **COSTS,
    )  # fmt: skip
    return WalkForwardSummary.from_result(result)


def test_walk_forward_section_shows_the_stitched_equity_and_the_folds(study, walked):
    summary = summary_of(study, walk_forward=walked)
    page = render_optimization_report(summary, trials_table(study))
    tags = Tags(page)
    chart = Tags(page.split("id='wf-equity-chart'>", 1)[1].split("</div>", 1)[0])
    [curve] = chart.find("path", "series")
    assert int(curve["data-points"]) == len(walked.equity) == 400
    assert len(tags.find("path", "series")) == 2  # and the running best
    folds = page.split("id='folds'")[1].split("</table>")[0]
    assert folds.count("<tr>") == len(walked.folds) + 1 == 5
    assert "fast=" in folds and "2023-" in folds


def test_walk_forward_summary_is_plain_data(walked):
    row = walked.folds[0]
    assert isinstance(row["oos_first"], str) and isinstance(row["params"], dict)
    assert all(isinstance(t, str) and isinstance(v, float) for t, v in walked.equity)
    json.dumps(walked.folds, allow_nan=False)


# --- the summary ----------------------------------------------------------------------------


def test_summary_round_trips_through_json(report, walked):
    summary, _ = report
    assert OptimizationSummary.from_dict(summary.to_dict()) == summary
    with_wf = dataclasses.replace(summary, walk_forward=walked)
    data = json.loads(json.dumps(with_wf.to_dict(), allow_nan=False))
    assert OptimizationSummary.from_dict(data) == with_wf
    assert data["objectives"] == [["sharpe", "maximize"]]
    assert data["overfitting"]["dsr"] == summary.overfitting.dsr
    assert data["walk_forward"]["equity"][0] == list(walked.equity[0])


def test_summary_stores_nan_and_infinity_as_null():
    summary = OptimizationSummary(
        study_name="s", strategy="sma_cross", overhead=float("nan"),
        overfitting=OverfittingSummary(sr=0.01, sr0=0.05, min_trl=float("inf")),
    )  # fmt: skip
    data = summary.to_dict()
    assert data["overhead"] is None and data["overfitting"]["min_trl"] is None
    json.dumps(data, allow_nan=False)
    page = render_optimization_report(summary, pd.DataFrame(columns=["number", "values"]))
    assert "∞: the best Sharpe does not beat SR0" in page


@pytest.mark.parametrize(
    ("data", "field", "says"),
    [
        ({"study_name": "s", "strategy": "x", "sampelr": "tpe"}, "sampelr", "'sampler'"),
        ({"strategy": "x"}, "study_name", "string"),
        ({"study_name": "s", "strategy": "x", "objectives": [["sharpe", "up"]]},
         "objectives.0", "'maximize' or 'minimize'"),
        ({"study_name": "s", "strategy": "x", "n_failed": -1}, "n_failed", "at least 0"),
        ({"study_name": "s", "strategy": "x", "seconds": "fast"}, "seconds", "number"),
        ({"study_name": "s", "strategy": "x", "overfitting": {"dsr": 0.5, "pbx": 1}},
         "overfitting.pbx", "did you mean 'pbo'"),
        ({"study_name": "s", "strategy": "x", "pareto": [{"values": [1]}]}, "pareto.0", "params"),
    ],
)  # fmt: skip
def test_summary_from_dict_names_the_bad_field(data, field, says):
    with pytest.raises(ValidationError, match=re.escape(says)) as err:
        OptimizationSummary.from_dict(data)
    assert err.value.field == field


def test_trials_of_another_number_of_objectives_are_refused(study, report):
    summary, _ = report
    trials = pd.DataFrame({"number": [0], "values": [(1.0, 2.0)], "state": ["COMPLETE"]})
    with pytest.raises(ValidationError, match="2 values for 1 objectives"):
        render_optimization_report(summary, trials)


def test_write_optimization_report_writes_one_self_contained_file(report, study, tmp_path: Path):
    summary, page = report
    path = write_optimization_report(tmp_path / "opt.html", summary, trials_table(study))
    text = path.read_text(encoding="utf-8")
    assert text == page and text.startswith("<!DOCTYPE html>")
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in text
