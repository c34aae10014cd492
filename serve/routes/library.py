"""``GET /strategies`` and ``GET /indicators``: the library, with parameters and ranges."""

from __future__ import annotations

from fastapi import APIRouter

from serve.routes.common import ERRORS
from serve.schemas import IndicatorInfo, StrategyInfo

router = APIRouter(tags=["library"], responses=ERRORS)


@router.get("/strategies", response_model=list[StrategyInfo])
def list_strategies() -> list[StrategyInfo]:
    """Library strategies with their parameters: type, default, range or choices."""
    import strategies

    return [StrategyInfo.model_validate(s) for s in strategies.list_strategies()]


@router.get("/indicators", response_model=list[IndicatorInfo])
def list_indicators() -> list[IndicatorInfo]:
    """Indicators with their inputs, parameters (default, min, max) and outputs."""
    from strategies.indicator_registry import indicator_schema

    return [IndicatorInfo.model_validate(i) for i in indicator_schema()]
