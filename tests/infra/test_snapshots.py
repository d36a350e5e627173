"""One snapshot per stack (default deployment, and the Aurora store on the default regions), asset
hashes masked. A safety net, not the spec."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from syrupy.extensions.json import JSONSnapshotExtension

from tests.infra.synth import Synthesized

_ASSET_HASH = re.compile(r"[0-9a-f]{64}")


def masked(template: dict[str, Any]) -> Any:
    return json.loads(_ASSET_HASH.sub("<asset-hash>", json.dumps(template, sort_keys=True)))


@pytest.fixture
def snapshot_json(snapshot: Any) -> Any:
    return snapshot.use_extension(JSONSnapshotExtension)


STACK_KINDS = ["Audit", "Keys-us-east-2", "Keys-us-west-1", "Table", "Functions-us-east-2", "Functions-us-west-1"]


@pytest.mark.parametrize("kind", STACK_KINDS)
def test_stack_snapshot(default_app: Synthesized, snapshot_json: Any, kind: str) -> None:
    name = f"{default_app.config.stack_prefix}-{kind}"
    assert masked(default_app.templates[name]) == snapshot_json


AURORA_STACK_KINDS = [
    f"{kind}-{region}"
    for kind in ("Keys", "Network", "PeerRoutes", "Database", "Functions")
    for region in ("us-east-2", "us-west-1")
] + ["Peering-us-east-2"]  # us-east-2 < us-west-1: the pair's connection is requested from us-east-2


@pytest.mark.parametrize("kind", AURORA_STACK_KINDS)
def test_aurora_stack_snapshot(aurora_app: Synthesized, snapshot_json: Any, kind: str) -> None:
    name = f"{aurora_app.config.stack_prefix}-{kind}"
    assert masked(aurora_app.templates[name]) == snapshot_json


def test_masking_leaves_no_asset_hash(default_app: Synthesized) -> None:
    for template in default_app.templates.values():
        assert not _ASSET_HASH.search(json.dumps(masked(template)))
