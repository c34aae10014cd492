"""ray-cluster.yaml as Ray's cluster launcher reads it: its own defaults filled in and its own
schema check (``prepare_config`` + ``validate_config``, what ``ray up`` runs first), for the
cloud config and for the commented on-premises variant; the gateway's head resource; the
shared-data settings every node loads before ``ray start``."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from core.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
TEXT = (ROOT / "ray-cluster.yaml").read_text(encoding="utf-8")
CONFIG: dict[str, Any] = yaml.safe_load(TEXT)
REPLACED = ("cluster_name", "max_workers", "upscaling_speed", "idle_timeout_minutes",
            "provider", "auth", "available_node_types", "head_node_type")  # fmt: skip


def local_variant() -> dict[str, Any]:
    """The commented on-premises block, uncommented, with the rest of the file after it."""
    block = TEXT.split("# LOCAL-VARIANT-BEGIN\n")[1].split("# LOCAL-VARIANT-END")[0]
    local = yaml.safe_load("\n".join(line[2:] for line in block.splitlines()))
    return {**local, **{k: v for k, v in CONFIG.items() if k not in REPLACED}}


@pytest.mark.parametrize("variant", ["aws", "local"])
def test_ray_validates_the_config_with_its_defaults_filled_in(variant: str) -> None:
    config = copy.deepcopy(CONFIG if variant == "aws" else local_variant())
    prepared = prepare_config(config)
    validate_config(prepared)  # raises on anything Ray's schema refuses
    assert prepared["provider"]["type"] == variant
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_the_gateway_resource_is_on_the_head_only_and_workers_autoscale() -> None:
    types = CONFIG["available_node_types"]
    head = types[CONFIG["head_node_type"]]
    assert head["resources"]["scizor_head"] == 1
    workers = [t for name, t in types.items() if name != CONFIG["head_node_type"]]
    assert workers and all("scizor_head" not in t["resources"] for t in workers)
    assert all(t["min_workers"] < t["max_workers"] for t in workers)  # the autoscaler decides
    start = " ".join(CONFIG["head_start_ray_commands"])
    assert """--resources='{"scizor_head": 1}'""" in start  # the local variant's source of it
    assert "scizor_head" not in " ".join(CONFIG["worker_start_ray_commands"])


def test_every_node_installs_the_project_and_loads_valid_shared_settings_before_ray() -> None:
    setup = " ".join(CONFIG["setup_commands"])
    assert "make venv" in setup
    exported = dict(re.findall(r"export (SCIZOR_[A-Z_]+)=(\S+?)'", setup))
    assert exported["SCIZOR_BAR_STORE"].startswith("s3://")  # one store every node reads
    assert exported["SCIZOR_DATABASE_URL"].startswith("postgresql+psycopg://")
    settings = Settings.from_env(exported)  # every name known, every value accepted
    assert settings.storage.bar_store == exported["SCIZOR_BAR_STORE"]
    for command in (*CONFIG["head_start_ray_commands"], *CONFIG["worker_start_ray_commands"]):
        if "ray start" in command:
            assert ". ~/.scizor-env" in command  # Ray's workers inherit the settings
    assert "scizor db upgrade" in " ".join(CONFIG["head_setup_commands"])
