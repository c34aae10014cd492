"""The deployment service: what HTTP routes and the CLI call to deploy and steer strategies.

:func:`create_deployment` validates a :class:`DeploymentSpec` through the strategy's own
typed parameters (or compiles its rule spec), the instrument ids, the capital, the bar size
and the mode against the account, then stores it in status ``created``. The lifecycle
functions talk to the deployment's runner actor (``scizor-runner-<id>``, see
:mod:`actors.strategy_runner`), creating it when needed.

Example:
    >>> spec = DeploymentSpec(strategy="sma_cross", params={"fast": 5, "slow": 20},
    ...                       instruments=["AAPL.NASDAQ"], capital=10_000, account="DU1")
    >>> record = create_deployment(catalog, spec)                        # doctest: +SKIP
    >>> start_deployment(settings, record.id)                            # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import ray

import strategies
from actors.runner_checks import check_mode
from actors.strategy_runner import get_runner
from core.errors import ValidationError
from core.instruments import parse
from core.settings import Settings
from core.types import TradingMode
from storage.catalog import Catalog, DeploymentRecord, DeploymentStatus
from strategies.base import Strategy
from strategies.rulespec import compile_rules

CALL_TIMEOUT_S = 120.0
"""How long a lifecycle call waits for the runner (a start loads history and subscribes)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeploymentSpec:
    """What to deploy.

    Attributes:
        strategy: a library strategy's name, or a rule-spec document (a mapping).
        instruments: canonical instrument ids (``AAPL.NASDAQ``).
        capital: the money allocated (> 0), split evenly over the instruments.
        params: the strategy's parameters (checked by its typed params).
        account: the IB account ("" : the gateway's only account).
        mode: ``paper`` or ``live``.
        bar_size: the bars it trades on.
    """

    strategy: str | Mapping[str, Any]
    instruments: Sequence[str]
    capital: Decimal | int | float | str
    params: Mapping[str, Any] = field(default_factory=dict)
    account: str = ""
    mode: TradingMode | str = TradingMode.PAPER
    bar_size: str = "1d"


def resolve_strategy(spec: DeploymentSpec) -> tuple[Strategy, dict[str, Any]]:
    """Return the spec's strategy and its resolved parameters.

    Raises:
        NotFound: an unknown library strategy (naming the closest one).
        ParameterError: a bad parameter, named in ``field``.
        ValidationError: an invalid rule spec, or parameters given to one.
    """
    if isinstance(spec.strategy, Mapping):
        strategy: Strategy = compile_rules(spec.strategy)
    else:
        strategy = strategies.get(spec.strategy)
    return strategy, strategy.resolve(spec.params)


def create_deployment(catalog: Catalog, spec: DeploymentSpec) -> DeploymentRecord:
    """Validate ``spec`` and store it as a deployment in status ``created``.

    Raises:
        NotFound: an unknown library strategy.
        ParameterError: a bad strategy parameter (``field`` names it).
        ValidationError: naming the field: instruments, capital, bar_size, mode or account
            (a paper deployment needs a ``DU`` paper account, a live one a live account).
    """
    strategy, params = resolve_strategy(spec)
    if isinstance(spec.instruments, str) or not spec.instruments:
        raise ValidationError(
            "instruments must be a non-empty list of ids such as ['AAPL.NASDAQ']",
            field="instruments",
        )
    instruments = [str(parse(i, field="instruments")) for i in spec.instruments]
    _check_account(spec.mode, spec.account)
    return catalog.deployments.create(
        strategy.name,
        instruments=instruments,
        params=params,
        mode=spec.mode,
        bar_size=spec.bar_size,
        capital=_capital(spec.capital),
        account=spec.account,
        rule_spec=dict(spec.strategy) if isinstance(spec.strategy, Mapping) else None,
    )


def start_deployment(
    settings: Settings,
    deployment_id: int,
    *,
    confirm_live: bool = False,
    gateway: Any = None,
    sink: Any = None,
) -> dict[str, Any]:
    """Start (or restart) a deployment's runner; return its status.

    Raises:
        NotFound, Conflict, ValidationError: as :meth:`StrategyRunner.start` does.
    """
    runner = get_runner(deployment_id, settings, gateway=gateway, sink=sink)
    return _call(runner.start.remote(confirm_live))


def wait_until_acted(
    settings: Settings, deployment_id: int, *, timeout: float = 60.0, interval: float = 0.25
) -> dict[str, Any] | None:
    """Wait until a started runner has acted on its first bars: every instrument has a last
    bar, so its target was evaluated and the order it called for (if any) was sent. Return
    the runner's status, or None if that did not happen within ``timeout`` (no bar yet: it
    acts when one completes)."""
    runner = get_runner(deployment_id, settings)
    deadline = time.monotonic() + timeout
    while True:
        status = _call(runner.status.remote())
        held = (status.get("state") or {}).get("instruments") or {}
        if held and all(entry.get("last_bar") for entry in held.values()):
            return status
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def pause_deployment(settings: Settings, deployment_id: int) -> dict[str, Any]:
    """Pause a deployment: no new orders, positions kept."""
    return _call(get_runner(deployment_id, settings).pause.remote())


def resume_deployment(settings: Settings, deployment_id: int) -> dict[str, Any]:
    """Resume a paused deployment."""
    return _call(get_runner(deployment_id, settings).resume.remote())


def stop_deployment(
    settings: Settings, deployment_id: int, *, flatten: bool = False
) -> dict[str, Any]:
    """Stop a deployment; ``flatten`` first sends the orders that zero its positions."""
    return _call(get_runner(deployment_id, settings).stop.remote(flatten))


def ensure_runners(catalog: Catalog, settings: Settings) -> list[int]:
    """Make sure every running or paused deployment has its runner; return their ids.

    Call it after a cluster restart: each runner resumes from its saved state.
    """
    ids = [
        d.id
        for status in (DeploymentStatus.RUNNING, DeploymentStatus.PAUSED)
        for d in catalog.deployments.list(status=status)
    ]
    for deployment_id in ids:
        _call(get_runner(deployment_id, settings).status.remote())
    return ids


def _call(ref: Any) -> dict[str, Any]:
    result: dict[str, Any] = ray.get(ref, timeout=CALL_TIMEOUT_S)
    return result


def _check_account(mode: TradingMode | str, account: str) -> None:
    """The mode's account rule now; the live confirmation is asked for at start."""
    try:
        TradingMode(mode)
    except ValueError:
        raise ValidationError(
            f"mode must be one of {', '.join(m.value for m in TradingMode)}; got {mode!r}",
            field="mode",
        ) from None
    if isinstance(account, str) and account:  # "": the gateway's only account, at start
        check_mode(mode, account, confirm_live=True)


def _capital(capital: Decimal | int | float | str) -> Decimal | int | float | str:
    if capital is None or isinstance(capital, bool):
        raise ValidationError(f"capital must be an amount > 0, got {capital!r}", field="capital")
    return capital
