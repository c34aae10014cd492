"""docs/api.md lists every route of the app with the scope it needs, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

from core.settings import Settings
from serve.app import create_api
from serve.context import ApiContext

DOC = Path(__file__).resolve().parents[3] / "docs" / "api.md"
ROW = re.compile(r"^\| `(GET|POST|PUT|PATCH|DELETE)` \| `([^`]+)` \| (\w+) \|", re.M)


def test_the_route_table_equals_the_apps_routes_and_scopes(tmp_path):
    context = ApiContext(Settings.from_env({"SCIZOR_HOME": str(tmp_path)}))
    spec = create_api(context, include_default_routes=True).openapi()
    served = {
        (method.upper(), path, op.get("x-scizor-scope", "open"))
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    }
    documented = ROW.findall(DOC.read_text())
    assert len(documented) == len(set(documented)), "a route is listed twice"
    assert set(documented) == served
