"""The SVG charts of the optimization report, on numeric axes (no dates).

Every chart returns ``<div class='chart' id='{name}-chart'>`` holding one inline SVG whose
text is escaped here. Lines are ``path.series`` (the report's rendering check looks for
them); heatmap cells are ``rect.cell`` with ``data-x``, ``data-y``, ``data-value`` (the
cell's best objective value, exactly: ``repr`` of the float), ``data-count`` and the
cell's bounds ``data-x-lo``, ``data-x-hi``, ``data-y-lo``, ``data-y-hi`` (see :class:`Grid`).
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from strategies.report import COLORS, nice_ticks, tick_text

__all__ = ["HEAT_BINS", "Grid", "bars_chart", "grid_of", "heatmap", "pareto_chart", "trial_chart"]

WIDTH, HEIGHT = 960, 320
PAD_L, PAD_R, PAD_T, PAD_B = 70, 20, 20, 44
HEAT_BINS = 20
"""A numeric parameter with more distinct values than this is cut into this many bins."""
MAX_DOTS = 5000
"""At most this many trials are drawn as dots (evenly spaced); lines use every trial."""
_WORST, _MID, _BEST = (209, 36, 47), (234, 238, 242), (26, 127, 55)


def _esc(text: object) -> str:
    return html.escape(str(text))


def _svg(name: str, height: float, body: Sequence[str]) -> str:
    return (
        f"<div class='chart' id='{name}-chart'><svg xmlns='http://www.w3.org/2000/svg' "
        f"viewBox='0 0 {WIDTH} {height:.0f}' width='{WIDTH}' height='{height:.0f}' role='img' "
        f"aria-label='{name} chart'>{''.join(body)}</svg></div>"
    )


class _Scale:
    """Maps values in [lo, hi] (padded by 5 %) onto pixels [start, stop]."""

    def __init__(self, lo: float, hi: float, start: float, stop: float) -> None:
        pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 1.0
        self.lo, self.hi, self.start, self.stop = lo - pad, hi + pad, start, stop

    def __call__(self, v: np.ndarray | float) -> np.ndarray:
        return self.start + (np.asarray(v, np.float64) - self.lo) / (self.hi - self.lo) * (
            self.stop - self.start
        )


def _axes(xs: _Scale, ys: _Scale, x_label: str, y_label: str) -> list[str]:
    """Grid lines, tick labels on both axes, and the axis titles."""
    out = ["<g class='axis'>"]
    for v in nice_ticks(ys.lo, ys.hi):
        y = float(ys(v))
        out.append(
            f"<line class='grid' x1='{PAD_L}' x2='{WIDTH - PAD_R}' y1='{y:.1f}' y2='{y:.1f}'/>"
            f"<text x='{PAD_L - 6}' y='{y + 4:.1f}' text-anchor='end'>{tick_text(v)}</text>"
        )
    for v in nice_ticks(xs.lo, xs.hi, 8):
        x = float(xs(v))
        out.append(
            f"<text x='{x:.1f}' y='{HEIGHT - PAD_B + 16}' text-anchor='middle'>"
            f"{tick_text(v)}</text>"
        )
    out.append(
        f"<text x='14' y='{HEIGHT / 2:.0f}' transform='rotate(-90 14 {HEIGHT / 2:.0f})' "
        f"text-anchor='middle'>{_esc(y_label)}</text><text x='{(WIDTH + PAD_L) / 2:.0f}' "
        f"y='{HEIGHT - 6}' text-anchor='middle'>{_esc(x_label)}</text></g>"
    )
    return out


def _frame(x: np.ndarray, y: np.ndarray) -> tuple[_Scale, _Scale]:
    return (
        _Scale(float(x.min()), float(x.max()), PAD_L, WIDTH - PAD_R),
        _Scale(float(y.min()), float(y.max()), HEIGHT - PAD_B, PAD_T),
    )


def _path(xs: np.ndarray, ys: np.ndarray, color: str, label: str) -> str:
    d = "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
    return (
        f"<path class='series' data-points='{len(xs)}' d='{d}' fill='none' stroke='{color}' "
        f"stroke-width='1.6'><title>{_esc(label)}</title></path>"
    )


def _dots(xs: np.ndarray, ys: np.ndarray, css: str, color: str, r: float = 2.5) -> list[str]:
    keep = np.unique(np.linspace(0, len(xs) - 1, min(len(xs), MAX_DOTS)).round().astype(int))
    return [
        f"<circle class='{css}' cx='{xs[i]:.1f}' cy='{ys[i]:.1f}' r='{r}' fill='{color}' "
        "fill-opacity='0.55'/>"
        for i in keep
    ]


def _legend(items: Sequence[tuple[str, str]]) -> list[str]:
    return [
        f"<rect x='{PAD_L + 10 + i * 170}' y='{PAD_T + 2}' width='12' height='3' fill='{c}'/>"
        f"<text class='legend' x='{PAD_L + 26 + i * 170}' y='{PAD_T + 7}'>{_esc(t)}</text>"
        for i, (t, c) in enumerate(items)
    ]


def trial_chart(
    name: str, numbers: np.ndarray, values: np.ndarray, *, metric: str, direction: str
) -> str:
    """Each trial's objective value against its number, and the running best as a line."""
    order = np.argsort(numbers, kind="stable")
    n, v = numbers[order].astype(np.float64), values[order]
    best = np.maximum.accumulate(v) if direction == "maximize" else np.minimum.accumulate(v)
    xs, ys = _frame(n, v)
    # The running best as steps: it holds until the next trial that improves it.
    change = np.flatnonzero(np.r_[True, best[1:] != best[:-1]])
    sx = np.repeat(n[change], 2)[1:]
    sy = np.repeat(best[change], 2)[:-1]
    sx, sy = np.r_[sx, n[-1]], np.r_[sy, best[-1]]
    body = _axes(xs, ys, "Trial number", metric)
    body += _dots(xs(n), ys(v), "trial", COLORS["equity"])
    body.append(_path(xs(sx), ys(sy), COLORS["dd"], f"best {metric} so far"))
    body += _legend([(f"{metric} of a trial", COLORS["equity"]), ("best so far", COLORS["dd"])])
    return _svg(name, HEIGHT, body)


def pareto_chart(
    points: np.ndarray, front: np.ndarray, *, metrics: Sequence[str], directions: Sequence[str]
) -> str:
    """Every trial's first two objectives (grey) and the Pareto front (joined, in colour)."""
    both = np.vstack([points, front]) if len(front) else points
    xs, ys = _frame(both[:, 0], both[:, 1])
    label = [f"{m} ({'higher' if d == 'maximize' else 'lower'} is better)"
             for m, d in zip(metrics, directions, strict=True)]  # fmt: skip
    body = _axes(xs, ys, label[0], label[1])
    body += _dots(xs(points[:, 0]), ys(points[:, 1]), "trial", COLORS["benchmark"])
    if len(front):
        f = front[np.argsort(front[:, 0], kind="stable")]
        body.append(_path(xs(f[:, 0]), ys(f[:, 1]), COLORS["equity"], "Pareto front"))
        body += _dots(xs(f[:, 0]), ys(f[:, 1]), "front", COLORS["equity"], r=4)
    body += _legend([("trial", COLORS["benchmark"]), ("Pareto front", COLORS["equity"])])
    return _svg("pareto", HEIGHT, body)


def bars_chart(shares: Sequence[tuple[str, float]]) -> str:
    """Horizontal bars of each parameter's importance share, largest first."""
    row, left = 24, 180
    top = max((s for _, s in shares), default=0.0) or 1.0
    body = []
    for i, (param, share) in enumerate(shares):
        y = PAD_T + i * row
        w = max(share, 0.0) / top * (WIDTH - left - 90)
        body.append(
            f"<text class='legend' x='{left - 8}' y='{y + 15}' text-anchor='end'>"
            f"{_esc(param)}</text><rect class='bar' data-param='{_esc(param)}' "
            f"data-share='{share!r}' x='{left}' y='{y + 4}' width='{w:.1f}' height='{row - 8}' "
            f"fill='{COLORS['equity']}'/><text class='legend' x='{left + w + 6:.1f}' "
            f"y='{y + 15}'>{share * 100:.1f}%</text>"
        )
    return _svg("importance", PAD_T * 2 + row * len(shares), body)


@dataclass(frozen=True, slots=True, kw_only=True)
class Grid:
    """Two parameters' trials binned into cells: the best value and the count per cell.

    Attributes:
        x_labels: Column labels (a value, or a bin's ``lo–hi``).
        y_labels: Row labels.
        x_bounds: Each column's ``(lo, hi)``: ``lo == hi`` for a value, else ``[lo, hi)``
            (the last bin ``[lo, hi]``).
        y_bounds: Each row's ``(lo, hi)`` likewise.
        cells: One ``(ix, iy, value, count)`` per populated cell: its column and row, the
            best value in it and the trials in it, by column then row.
    """

    x_labels: tuple[str, ...]
    y_labels: tuple[str, ...]
    x_bounds: tuple[tuple[float, float], ...]
    y_bounds: tuple[tuple[float, float], ...]
    cells: tuple[tuple[int, int, float, int], ...]


def _bins(
    values: np.ndarray,
) -> tuple[np.ndarray, tuple[str, ...], tuple[tuple[float, float], ...]]:
    """Cell position of each value, labels and bounds: a value each, or HEAT_BINS equal bins
    (``[lo, hi)``, the last one ``[lo, hi]``)."""
    distinct = np.unique(values)
    if len(distinct) <= HEAT_BINS:
        labels = tuple(tick_text(float(v)) for v in distinct)
        return (
            np.searchsorted(distinct, values),
            labels,
            tuple((float(v), float(v)) for v in distinct),
        )
    edges = np.linspace(float(distinct[0]), float(distinct[-1]), HEAT_BINS + 1)
    where = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, HEAT_BINS - 1)
    bounds = tuple((float(a), float(b)) for a, b in itertools.pairwise(edges))
    return where, tuple(f"{tick_text(a)}–{tick_text(b)}" for a, b in bounds), bounds


def grid_of(x: np.ndarray, y: np.ndarray, values: np.ndarray, *, direction: str) -> Grid:
    """Bin the trials by two numeric parameters; keep each cell's best value."""
    ix, x_labels, x_bounds = _bins(x.astype(np.float64))
    iy, y_labels, y_bounds = _bins(y.astype(np.float64))
    table = pd.DataFrame({"ix": ix, "iy": iy, "value": values})
    best = "max" if direction == "maximize" else "min"
    agg = table.groupby(["ix", "iy"], sort=True)["value"].agg([best, "count"])
    cells = tuple(
        (int(i), int(j), float(v), int(n))
        for (i, j), v, n in zip(agg.index, agg[best], agg["count"], strict=True)
    )
    return Grid(x_labels=x_labels, y_labels=y_labels, x_bounds=x_bounds, y_bounds=y_bounds,
                cells=cells)  # fmt: skip


def _color(t: float) -> str:
    """Red (worst, t = 0) through the grid lines' grey to green (best, t = 1)."""
    a, b, u = (_WORST, _MID, t * 2) if t < 0.5 else (_MID, _BEST, t * 2 - 1)
    r, g, bl = (round(p + (q - p) * u) for p, q in zip(a, b, strict=True))
    return f"rgb({r},{g},{bl})"


def heatmap(grid: Grid, *, x_name: str, y_name: str, metric: str, direction: str) -> str:
    """The grid as coloured cells (best green, worst red) with a legend of the scale."""
    nx, ny = len(grid.x_labels), len(grid.y_labels)
    left, top, legend_w = 120, PAD_T, 150
    cw = (WIDTH - left - PAD_R - legend_w) / nx
    ch = min(26.0, 420.0 / ny)
    values = [c[2] for c in grid.cells]
    lo, hi = min(values), max(values)
    sign = 1.0 if direction == "maximize" else -1.0  # the best end is green either way
    body = [
        _cell(grid, c, box=(left + c[0] * cw, top + (ny - 1 - c[1]) * ch, cw, ch),
              shade=0.5 + sign * (c[2] - (lo + hi) / 2) / (hi - lo or 1.0),
              names=(x_name, y_name, metric))
        for c in grid.cells
    ]  # fmt: skip
    body += _heat_axes(grid, left=left, top=top, cw=cw, ch=ch, names=(x_name, y_name))
    body += _heat_legend(lo, hi, x=WIDTH - PAD_R - legend_w + 20, y=top, direction=direction)
    return _svg("heatmap", top + ny * ch + 56, body)


def _cell(
    grid: Grid,
    cell: tuple[int, int, float, int],
    *,
    box: tuple[float, float, float, float],
    shade: float,
    names: tuple[str, str, str],
) -> str:
    """One heatmap cell: ``shade`` 0 is the worst value, 1 the best."""
    ix, iy, value, count = cell
    xl, yl = grid.x_labels[ix], grid.y_labels[iy]
    (x0, x1), (y0, y1) = grid.x_bounds[ix], grid.y_bounds[iy]
    tip = f"{names[0]} {xl}, {names[1]} {yl}: best {names[2]} {value:.4g} of {count} trials"
    x, y, w, h = box
    return (
        f"<rect class='cell' data-x='{_esc(xl)}' data-y='{_esc(yl)}' data-x-lo='{x0!r}' "
        f"data-x-hi='{x1!r}' data-y-lo='{y0!r}' data-y-hi='{y1!r}' data-value='{value!r}' "
        f"data-count='{count}' x='{x:.1f}' y='{y:.1f}' width='{w:.1f}' height='{h:.1f}' "
        f"fill='{_color(shade)}' stroke='#fff'><title>{_esc(tip)}</title></rect>"
    )


def _heat_axes(
    grid: Grid, *, left: float, top: float, cw: float, ch: float, names: tuple[str, str]
) -> list[str]:
    nx, ny = len(grid.x_labels), len(grid.y_labels)
    bottom = top + ny * ch
    widest = max(len(label) for label in grid.x_labels) * 6.5 + 8  # px at 11 px text
    every = max(1, math.ceil(widest / cw))
    out = ["<g class='axis'>"]
    out += [
        f"<text x='{left + (i + 0.5) * cw:.1f}' y='{bottom + 14:.1f}' text-anchor='middle'>"
        f"{_esc(label)}</text>"
        for i, label in enumerate(grid.x_labels)
        if i % every == 0
    ]
    out += [
        f"<text x='{left - 6}' y='{top + (ny - 1 - i + 0.5) * ch + 4:.1f}' text-anchor='end'>"
        f"{_esc(label)}</text>"
        for i, label in enumerate(grid.y_labels)
    ]
    mid_x, mid_y = left + nx * cw / 2, top + ny * ch / 2
    out.append(
        f"<text x='{mid_x:.1f}' y='{bottom + 32:.1f}' text-anchor='middle'>{_esc(names[0])}"
        f"</text><text x='14' y='{mid_y:.1f}' transform='rotate(-90 14 {mid_y:.1f})' "
        f"text-anchor='middle'>{_esc(names[1])}</text></g>"
    )
    return out


def _heat_legend(lo: float, hi: float, *, x: float, y: float, direction: str) -> list[str]:
    best, worst = (hi, lo) if direction == "maximize" else (lo, hi)
    stops = "".join(
        f"<stop offset='{t:.2f}' stop-color='{_color(1 - t)}'/>" for t in (0.0, 0.5, 1.0)
    )
    return [
        f"<defs><linearGradient id='heat-scale' x1='0' y1='0' x2='0' y2='1'>{stops}"
        f"</linearGradient></defs><g class='heat-legend'>"
        f"<rect x='{x:.1f}' y='{y:.1f}' width='14' height='160' fill='url(#heat-scale)'/>"
        f"<text class='legend' x='{x + 20:.1f}' y='{y + 10:.1f}'>best {tick_text(best)}</text>"
        f"<text class='legend' x='{x + 20:.1f}' y='{y + 160:.1f}'>worst {tick_text(worst)}"
        "</text></g>"
    ]
