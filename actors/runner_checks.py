"""What a deployment must satisfy before its runner trades: the mode against the account,
and the strategy it names.
"""

from __future__ import annotations

import strategies
from core.errors import ValidationError
from core.types import TradingMode
from storage.catalog import DeploymentRecord
from strategies.base import Strategy
from strategies.rulespec import compile_rules

PAPER_PREFIX = "DU"


def check_mode(mode: TradingMode | str, account: str, *, confirm_live: bool) -> None:
    """Refuse a deployment whose mode does not match its account.

    Raises:
        ValidationError: ``field="mode"`` for live without ``confirm_live`` or a live
            deployment on a paper account; ``field="account"`` for a paper deployment on a
            live account.
    """
    paper_account = account.upper().startswith(PAPER_PREFIX)
    if TradingMode(mode) == TradingMode.PAPER:
        if not paper_account:
            raise ValidationError(
                f"mode is paper but account {account!r} is a live account (paper accounts "
                f"start with {PAPER_PREFIX}); use a paper account or mode=live",
                field="account",
            )
        return
    if paper_account:
        raise ValidationError(
            f"mode is live but account {account!r} is a paper account; connect to a live "
            "account or use mode=paper",
            field="mode",
        )
    if not confirm_live:
        raise ValidationError(
            "mode is live: starting it sends real orders; pass confirm_live=True to confirm",
            field="mode",
        )


def deployment_strategy(record: DeploymentRecord) -> Strategy:
    """Return the strategy a deployment trades (its rule spec, or the library's by name).

    Raises:
        NotFound: an unknown library name.
        ValidationError: an invalid rule spec.
    """
    if record.rule_spec is not None:
        return compile_rules(record.rule_spec)
    return strategies.get(record.strategy)
