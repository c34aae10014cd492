"""The three ``curl`` examples ``scizor up`` prints: shell-safe, each body accepted by the
API's own request models (the integration test runs them as printed against the platform)."""

from __future__ import annotations

import json
import shlex

from cluster.cli import curl_examples
from optimize.study_spec import parse_study
from serve.schemas_backtests import BacktestRequest
from serve.schemas_trading import DeploymentRequest


def parts(line: str) -> tuple[str, dict, list[str]]:
    words = shlex.split(line)
    assert words[:2] == ["curl", "-s"]
    body = json.loads(words[words.index("-d") + 1])
    headers = [words[i + 1] for i, w in enumerate(words) if w == "-H"]
    return words[-1], body, headers


def test_the_examples_post_valid_bodies_with_the_token() -> None:
    lines = curl_examples("http://127.0.0.1:8000", "scz_secret")
    assert len(lines) == 3
    (bt_url, backtest, h1), (opt_url, study, _), (dep_url, deployment, _) = map(parts, lines)
    assert "Authorization: Bearer scz_secret" in h1 and "Content-Type: application/json" in h1
    assert bt_url.endswith("/backtests") and opt_url.endswith("/optimizations")
    assert dep_url.endswith("/trading/deployments")
    BacktestRequest.model_validate(backtest)
    spec = parse_study(study)
    assert spec.sampler == "grid" and spec.name == "quickstart-sma-etfs"
    request = DeploymentRequest.model_validate(deployment)
    assert request.start and request.mode == "paper"


def test_without_the_token_the_examples_name_a_variable() -> None:
    for line in curl_examples("http://h:1", None):
        assert "Bearer $SCIZOR_TOKEN" in line and line.startswith("curl ")
