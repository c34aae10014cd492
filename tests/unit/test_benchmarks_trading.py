"""The trading-path benchmark runs end to end in its --quick mode (times are not checked).

It runs in a fresh interpreter: the benchmark starts its own local Ray (2 CPUs) and ibsim,
which a unit test process never does.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_trading_benchmark_quick_mode_prints_both_tables():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "trading.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    for title in ("1. Bar to order", "2. Orders through risk", "ibsim receipt", "orders/s"):
        assert title in result.stdout, result.stdout
    assert "load average after" in result.stdout
