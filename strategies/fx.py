"""Currencies of a multi-instrument account: whose currency each instrument is in, the
account's base currency, and the FX rates that convert one into the other.

An account never adds amounts in different currencies: every instrument's prices (and its
commission schedule's fixed amounts) are converted into the base currency bar by bar, with
the rate of the latest FX observation at or before the bar's timestamp (forward fill from
the past only; a later observation never reaches an earlier bar). Without rates for a
foreign currency the run is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from core.errors import DataError, ParameterError
from strategies.costs import check_currency

Currencies = str | Mapping[str, str] | None


def instrument_currencies(currencies: Currencies, symbols: Sequence[str]) -> list[str]:
    """Return each symbol's currency code: ``None`` is USD for all, a string is one currency
    for all, a mapping names every symbol's.

    Raises:
        ParameterError: a code is malformed, or the mapping misses or invents a symbol
            (``field="currencies"``).
    """
    if currencies is None:
        return ["USD"] * len(symbols)
    if isinstance(currencies, str):
        return [check_currency(currencies, field="currencies")] * len(symbols)
    if not isinstance(currencies, Mapping):
        raise ParameterError(
            f"currencies must be a code such as 'AUD' or a mapping of symbol to code, "
            f"got {type(currencies).__name__}",
            field="currencies",
        )
    missing = [s for s in symbols if s not in currencies]
    unknown = sorted(str(s) for s in set(currencies) - set(symbols))
    if missing or unknown:
        raise ParameterError(
            f"currencies must name the currency of every symbol and nothing else; "
            f"missing {missing}, unknown {unknown}",
            field="currencies",
        )
    return [check_currency(currencies[s], field="currencies") for s in symbols]


def account_currency(base_currency: str | None, codes: Sequence[str]) -> str:
    """Return the account's currency: ``base_currency``, else the instruments' common
    currency, else USD."""
    if base_currency is not None:
        return check_currency(base_currency, field="base_currency")
    return codes[0] if len(set(codes)) == 1 else "USD"


def fx_rates(
    fx: Mapping[str, pd.Series] | None,
    *,
    codes: Sequence[str],
    base: str,
    index: pd.DatetimeIndex,
    started: np.ndarray,
) -> np.ndarray | None:
    """Return the (n, k) base-currency price of one unit of each instrument's currency at
    each bar of ``index`` (1.0 for the base currency), or None when every instrument is in
    the base currency.

    Args:
        fx: currency code -> Series of the base-currency price of one unit of it, on a
            UTC DatetimeIndex.
        codes: each instrument's currency.
        base: the account's currency.
        index: the account's bar calendar.
        started: (n, k) bools, True from each instrument's first bar on.

    Raises:
        ParameterError: rates are needed but ``fx`` is missing, names the base currency,
            lacks a needed currency or is not a mapping (``field="fx"``).
        DataError: a rate series is malformed, or has no observation at or before a bar
            where its instrument trades (``field="fx"``).
    """
    foreign = sorted(set(codes) - {base})
    if not foreign:
        return None
    given = _given(fx, foreign=foreign, codes=codes, base=base)
    rates = np.ones((len(index), len(codes)))
    for code in foreign:
        aligned = _aligned(given[code], code, index=index)
        for j in np.flatnonzero(np.asarray(codes) == code):
            gap = started[:, j] & np.isnan(aligned)
            if gap.any():
                raise DataError(
                    f"fx[{code!r}] has no rate at or before {index[int(gap.argmax())]}, a bar "
                    f"of an instrument in {code}; start the series earlier",
                    field="fx",
                )
            rates[:, j] = np.where(started[:, j], aligned, 1.0)
    return rates


def _given(
    fx: Mapping[str, pd.Series] | None, *, foreign: list[str], codes: Sequence[str], base: str
) -> dict[str, pd.Series]:
    """Return ``fx`` keyed by upper-case code, checked against the currencies needed."""
    involved = ", ".join(sorted(set(codes)))
    if fx is None:
        raise ParameterError(
            f"the instruments are in {involved} but the account is in {base}; amounts in "
            f"different currencies are never added: pass fx={{code: Series of {base} per "
            f"unit}} for {', '.join(foreign)}, or base_currency= one of them if they share it",
            field="fx",
        )
    if not isinstance(fx, Mapping):
        raise ParameterError(
            f"fx must map currency codes to Series of {base} per unit, got {type(fx).__name__}",
            field="fx",
        )
    given = {check_currency(code, field="fx"): series for code, series in fx.items()}
    if base in given:
        raise ParameterError(
            f"fx names the account's own currency {base}; give rates for {', '.join(foreign)}",
            field="fx",
        )
    missing = [code for code in foreign if code not in given]
    if missing:
        raise ParameterError(
            f"fx lacks rates for {', '.join(missing)} (instruments in {involved}, account "
            f"in {base}); add Series of {base} per unit of each",
            field="fx",
        )
    return given


def _aligned(series: pd.Series, code: str, *, index: pd.DatetimeIndex) -> np.ndarray:
    """Return the latest rate at or before each bar of ``index`` (NaN before the first)."""
    stamps = series.index if isinstance(series, pd.Series) else None
    if not isinstance(stamps, pd.DatetimeIndex) or stamps.tz is None:
        raise DataError(
            f"fx[{code!r}] must be a pandas Series on a timezone-aware (UTC) DatetimeIndex",
            field="fx",
        )
    if not stamps.is_monotonic_increasing or stamps.has_duplicates:
        raise DataError(f"fx[{code!r}] timestamps must be strictly increasing", field="fx")
    try:
        values = series.to_numpy(np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"fx[{code!r}] must hold numbers ({exc})", field="fx") from None
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
        first = int(bad.argmax())
        raise DataError(
            f"fx[{code!r}] rates must be finite and positive; at {stamps[first]} it is "
            f"{values[first]!r}",
            field="fx",
        )
    when = stamps.tz_convert("UTC").as_unit("ns").asi8
    bars = index.tz_convert("UTC").as_unit("ns").asi8
    at = np.searchsorted(when, bars, side="right") - 1  # the last stamp <= each bar
    out = np.full(len(index), np.nan)
    known = at >= 0
    out[known] = values[at[known]]
    return out
