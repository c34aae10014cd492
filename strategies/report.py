"""A self-contained HTML backtest report: inline SVG charts, no network, one file.

:func:`write_report` draws equity against the benchmark, the drawdown (underwater) curve, a
year-by-month returns heatmap, the close price with trade entries and exits, and the metrics
table. The charts are SVG generated here; a few lines of inline script only mark each chart
``data-rendered="1"`` once the browser has laid out its lines (used by the rendering test).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "COLORS",
    "nice_ticks",
    "number_text",
    "page",
    "render_report",
    "tick_text",
    "time_chart",
    "write_report",
]

WIDTH, HEIGHT = 960, 300
PAD_L, PAD_R, PAD_T, PAD_B = 70, 20, 20, 40
MAX_POINTS = 2000
COLORS = {"equity": "#1f6feb", "benchmark": "#8b949e", "dd": "#d1242f", "price": "#24292f"}

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;
max-width:1000px;color:#24292f;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.sub{color:#57606a;font-size:13px}.chart svg{display:block}
.axis text{font-size:11px;fill:#57606a}.grid{stroke:#eaeef2}
.legend{font-size:12px;fill:#24292f}
table{border-collapse:collapse;font-size:12px}td,th{padding:3px 7px;text-align:right}
table.metrics{width:100%}table.metrics td:first-child{text-align:left;color:#57606a}
table.metrics tr:nth-child(even){background:#f6f8fa}
table.heat td{min-width:38px;border:1px solid #fff}table.heat th{color:#57606a}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:0 32px}
"""

_JS = """
document.querySelectorAll('.chart').forEach(function(c){
  var ok=Array.prototype.every.call(c.querySelectorAll('path.series'),function(p){
    var b=p.getBBox();return p.getTotalLength()>0&&(b.width>0||b.height>0);});
  if(ok&&c.querySelectorAll('path.series').length>0){c.setAttribute('data-rendered','1');}
});
"""


def write_report(
    path: str | Path,
    *,
    equity: pd.Series,
    stats: Mapping[str, float],
    trades: pd.DataFrame | None = None,
    bars: pd.DataFrame | None = None,
    benchmark: pd.Series | None = None,
    title: str = "SCIZOR backtest",
) -> Path:
    """Write the HTML report to ``path`` and return it.

    Args:
        path: The file to write (its folder must exist).
        equity: Account value per bar (UTC DatetimeIndex).
        stats: Metrics, e.g. from :func:`strategies.metrics.compute_stats`.
        trades: Closed trades (``entry_time entry_price exit_time exit_price side pnl``);
            ``None`` or empty draws no markers.
        bars: OHLCV bars for the price chart; without them the price chart is left out.
        benchmark: Buy-and-hold equity or prices; rescaled to start at the first equity value.
        title: The page heading.

    Returns:
        The path written.
    """
    out = Path(path)
    out.write_text(
        render_report(
            equity=equity,
            stats=stats,
            trades=trades,
            bars=bars,
            benchmark=benchmark,
            title=title,
        ),
        encoding="utf-8",
    )
    return out


def render_report(
    *,
    equity: pd.Series,
    stats: Mapping[str, float],
    trades: pd.DataFrame | None = None,
    bars: pd.DataFrame | None = None,
    benchmark: pd.Series | None = None,
    title: str = "SCIZOR backtest",
) -> str:
    """Return the report as an HTML string (see :func:`write_report`)."""
    eq = pd.Series(equity, dtype=np.float64).dropna()
    series = [("Strategy", eq, COLORS["equity"])]
    if benchmark is not None and len(eq):
        bench = pd.Series(benchmark, dtype=np.float64).reindex(eq.index).ffill().dropna()
        if len(bench) and bench.iloc[0] != 0:
            series.append(("Benchmark", bench / bench.iloc[0] * eq.iloc[0], COLORS["benchmark"]))
    drawdown = (eq / eq.cummax() - 1.0) * 100.0 if len(eq) else eq
    span = f"{eq.index[0]:%Y-%m-%d} to {eq.index[-1]:%Y-%m-%d}" if len(eq) else "no data"
    parts = [
        f"<h1>{html.escape(title)}</h1><div class='sub'>{span} · {len(eq)} bars</div>",
        "<h2>Equity</h2>",
        _line_chart("equity", series, y_label="Account value"),
        "<h2>Drawdown</h2>",
        _line_chart("drawdown", [("Drawdown %", drawdown, COLORS["dd"])], y_label="%", fill=True),
        "<h2>Monthly returns (%)</h2>",
        _heatmap(eq),
    ]
    if bars is not None and "close" in bars and len(bars):
        close = pd.Series(bars["close"], dtype=np.float64)
        n_tr = 0 if trades is None else len(trades)
        parts += [
            f"<h2>Price and trades ({n_tr} trades)</h2>",
            _line_chart(
                "price", [("Close", close, COLORS["price"])], y_label="Price", trades=trades
            ),
        ]
    parts += ["<h2>Metrics</h2>", _metrics_table(stats)]
    body = "\n".join(parts)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>"
        f"<body>{body}<script>{_JS}</script></body></html>"
    )


def _downsample(s: pd.Series) -> pd.Series:
    """Keep at most MAX_POINTS evenly spaced points (first and last included)."""
    if len(s) <= MAX_POINTS:
        return s
    idx = np.unique(np.linspace(0, len(s) - 1, MAX_POINTS).round().astype(int))
    return s.iloc[idx]


def _nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def _fmt(v: float) -> str:
    if abs(v) >= 1e7:
        return f"{v / 1e6:,.1f}M"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:,.2f}".rstrip("0").rstrip(".") if v != int(v) else f"{v:,.0f}"


class _Frame:
    """Maps timestamps and values to SVG coordinates."""

    def __init__(self, t0: pd.Timestamp, t1: pd.Timestamp, lo: float, hi: float) -> None:
        pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 1.0
        self.t0, self.span = t0.value, max(t1.value - t0.value, 1)
        self.lo, self.hi = lo - pad, hi + pad

    def x(self, t: np.ndarray) -> np.ndarray:
        return PAD_L + (t - self.t0) / self.span * (WIDTH - PAD_L - PAD_R)

    def y(self, v: np.ndarray) -> np.ndarray:
        return PAD_T + (self.hi - v) / (self.hi - self.lo) * (HEIGHT - PAD_T - PAD_B)


def _axes(frame: _Frame, t0: pd.Timestamp, t1: pd.Timestamp, y_label: str) -> list[str]:
    """Grid lines, y tick labels and date labels."""
    out = ["<g class='axis'>"]
    for v in _nice_ticks(frame.lo, frame.hi):
        y = float(frame.y(np.array([v]))[0])
        out.append(
            f"<line class='grid' x1='{PAD_L}' x2='{WIDTH - PAD_R}' y1='{y:.1f}' "
            f"y2='{y:.1f}'/><text x='{PAD_L - 6}' y='{y + 4:.1f}' "
            f"text-anchor='end'>{_fmt(v)}</text>"
        )
    dates = pd.date_range(t0, t1, periods=6)
    fmt = "%Y-%m-%d" if (t1 - t0) > pd.Timedelta(days=3) else "%m-%d %H:%M"
    for i, d in enumerate(dates):
        x = float(frame.x(np.array([d.value]))[0])
        anchor = "start" if i == 0 else "end" if i == len(dates) - 1 else "middle"
        out.append(
            f"<text x='{x:.1f}' y='{HEIGHT - PAD_B + 16}' text-anchor='{anchor}'>"
            f"{d.strftime(fmt)}</text>"
        )
    out.append(
        f"<text x='14' y='{HEIGHT / 2:.0f}' transform='rotate(-90 14 {HEIGHT / 2:.0f})' "
        f"text-anchor='middle'>{html.escape(y_label)}</text>"
    )
    out.append(
        f"<text x='{(WIDTH + PAD_L) / 2:.0f}' y='{HEIGHT - 4}' "
        "text-anchor='middle'>Date (UTC)</text></g>"
    )
    return out


def _line_chart(
    name: str,
    series: Sequence[tuple[str, pd.Series, str]],
    *,
    y_label: str,
    fill: bool = False,
    trades: pd.DataFrame | None = None,
) -> str:
    """An SVG line chart of one or more series sharing the time axis."""
    data = [(label, _downsample(s.dropna()), color) for label, s, color in series]
    data = [d for d in data if len(d[1])]
    if not data:
        return f"<div class='chart empty' id='{name}-chart'><p class='sub'>No data.</p></div>"
    t0 = min(s.index[0] for _, s, _ in data)
    t1 = max(s.index[-1] for _, s, _ in data)
    lo = min(float(s.min()) for _, s, _ in data)
    hi = max(float(s.max()) for _, s, _ in data)
    frame = _Frame(t0, t1, lo, hi)
    svg = [
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {WIDTH} {HEIGHT}' "
        f"width='{WIDTH}' height='{HEIGHT}' role='img' aria-label='{name} chart'>"
    ]
    svg += _axes(frame, t0, t1, y_label)
    for i, (label, s, color) in enumerate(data):
        xs = frame.x(pd.DatetimeIndex(s.index).as_unit("ns").asi8.astype(np.float64))
        ys = frame.y(s.to_numpy())
        d = "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
        if fill:
            base = float(frame.y(np.array([0.0]))[0])
            svg.append(
                f"<path d='{d} L{xs[-1]:.1f},{base:.1f} L{xs[0]:.1f},{base:.1f} Z' "
                f"fill='{color}' fill-opacity='0.18' stroke='none'/>"
            )
        svg.append(
            f"<path class='series' data-points='{len(s)}' d='{d}' fill='none' "
            f"stroke='{color}' stroke-width='1.4'/>"
        )
        svg.append(
            f"<rect x='{PAD_L + 10 + i * 120}' y='{PAD_T + 2}' width='12' height='3' "
            f"fill='{color}'/><text class='legend' x='{PAD_L + 26 + i * 120}' "
            f"y='{PAD_T + 7}'>{html.escape(label)}</text>"
        )
    if trades is not None and len(trades):
        svg += _markers(frame, trades)
    svg.append("</svg>")
    return f"<div class='chart' id='{name}-chart'>{''.join(svg)}</div>"


def _markers(frame: _Frame, trades: pd.DataFrame) -> list[str]:
    """Entry (triangle) and exit (circle) markers; green for winners, red for losers."""
    out = []
    for row in trades.itertuples(index=False):
        win = float(getattr(row, "pnl", 0.0)) >= 0
        color = "#1a7f37" if win else "#d1242f"
        up = str(getattr(row, "side", "long")).lower() in ("long", "buy")
        tip = html.escape(
            f"{row.side} {row.entry_time:%Y-%m-%d} @ {row.entry_price:.2f} → "
            f"{row.exit_time:%Y-%m-%d} @ {row.exit_price:.2f}, pnl {row.pnl:.2f}"
        )
        ex = float(frame.x(np.array([pd.Timestamp(str(row.entry_time)).value], dtype=float))[0])
        ey = float(frame.y(np.array([row.entry_price]))[0])
        sign = 1 if up else -1
        out.append(
            f"<path class='marker entry' d='M{ex:.1f},{ey:.1f} l-5,{8 * sign} l10,0 Z' "
            f"fill='{color}'><title>{tip}</title></path>"
        )
        xx = float(frame.x(np.array([pd.Timestamp(str(row.exit_time)).value], dtype=float))[0])
        xy = float(frame.y(np.array([row.exit_price]))[0])
        out.append(
            f"<circle class='marker exit' cx='{xx:.1f}' cy='{xy:.1f}' r='3.5' "
            f"fill='white' stroke='{color}' stroke-width='1.6'><title>{tip}</title>"
            "</circle>"
        )
    return out


def _heat_color(v: float, scale: float) -> str:
    """Green for gains, red for losses, stronger with size."""
    if not math.isfinite(v):
        return "#f6f8fa"
    a = min(abs(v) / scale, 1.0) if scale > 0 else 0.0
    base = (26, 127, 55) if v >= 0 else (209, 36, 47)
    r, g, b = (round(255 - (255 - c) * (0.15 + 0.75 * a)) for c in base)
    return f"rgb({r},{g},{b})"


def _heatmap(eq: pd.Series) -> str:
    """Year x month table of compounded monthly returns, plus the year's total."""
    if len(eq) < 2 or not isinstance(eq.index, pd.DatetimeIndex):
        return "<p class='sub'>Not enough data for monthly returns.</p>"
    idx = eq.index.tz_convert("UTC") if eq.index.tz is not None else eq.index
    month_end = pd.Series(eq.to_numpy(), idx).groupby([idx.year, idx.month]).last()
    prev = month_end.shift(1)
    prev.iloc[0] = eq.iloc[0]
    monthly = (month_end / prev - 1.0) * 100.0
    scale = float(np.nanpercentile(np.abs(monthly.to_numpy()), 90)) or 1.0
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    rows = [
        "<table class='heat' id='monthly-returns'><tr><th>Year</th>"
        + "".join(f"<th>{m}</th>" for m in months)
        + "<th>Year</th></tr>"
    ]
    for year in sorted({y for y, _ in monthly.index}):
        cells = []
        for m in range(1, 13):
            v = float(monthly.get((year, m), np.nan))
            text = f"{v:.1f}" if math.isfinite(v) else ""
            cells.append(f"<td style='background:{_heat_color(v, scale)}'>{text}</td>")
        total = (np.prod(1.0 + monthly.loc[year].to_numpy() / 100.0) - 1.0) * 100.0
        cells.append(
            f"<td style='background:{_heat_color(total, scale * 3)}'><b>{total:.1f}</b></td>"
        )
        rows.append(f"<tr><th>{year}</th>{''.join(cells)}</tr>")
    return "".join(rows) + "</table>"


def _metric_text(v: float) -> str:
    """Readable number: en dash for NaN, 2 decimals from 100 up, else 4 significant digits."""
    if not math.isfinite(v):
        return "–"
    if v == int(v) and abs(v) < 1e15:
        return f"{v:,.0f}"
    return f"{v:,.2f}" if abs(v) >= 100 else f"{v:.4g}"


def _metrics_table(stats: Mapping[str, float]) -> str:
    """Two-column table of every metric, NaN shown as an en dash."""
    rows = []
    for key, value in stats.items():
        try:
            v = float(value)
            text = _metric_text(v)
        except (TypeError, ValueError):
            text = html.escape(str(value))
        rows.append(
            f"<tr><td>{html.escape(key)}</td><td data-key='{html.escape(key)}'>{text}</td></tr>"
        )
    half = (len(rows) + 1) // 2
    tables = (
        f"<table class='metrics'>{''.join(part)}</table>" for part in (rows[:half], rows[half:])
    )
    return f"<div class='grid2' id='metrics'>{''.join(tables)}</div>"


# --- Building blocks for other reports in the same style (e.g. an optimization report) -----


def page(*, title: str, body: str, css: str = "") -> str:
    """Return a whole self-contained HTML page in this report's style.

    Args:
        title: The page title (escaped here).
        body: Trusted HTML of the page's body (escape its text before).
        css: Extra style rules, after this report's own.

    Returns:
        The document, with the report's CSS and the script that marks each
        ``div.chart`` ``data-rendered="1"`` once its ``path.series`` lines are laid out.
    """
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}{css}</style></head>"
        f"<body>{body}<script>{_JS}</script></body></html>"
    )


def time_chart(
    name: str,
    series: Sequence[tuple[str, pd.Series, str]],
    *,
    y_label: str,
    fill: bool = False,
) -> str:
    """Return an SVG line chart of ``(label, series, colour)`` on one time axis.

    The equity chart's drawing: at most :data:`MAX_POINTS` points a series, a legend, dates
    along the bottom, in ``<div class='chart' id='{name}-chart'>``.
    """
    return _line_chart(name, series, y_label=y_label, fill=fill)


def nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Return about ``count`` round tick values covering ``[lo, hi]``."""
    return _nice_ticks(lo, hi, count)


def tick_text(v: float) -> str:
    """Return an axis label of ``v``: short (1.5M, 12,000, 0.25)."""
    return _fmt(v)


def number_text(v: float) -> str:
    """Return ``v`` as the metrics table shows it (en dash for NaN, 4 significant digits)."""
    return _metric_text(v)
