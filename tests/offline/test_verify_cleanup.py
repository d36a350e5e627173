"""The clean-up runs whatever happens: after a Ctrl-C in the middle of the checks, every item the run
wrote is still deleted in every region before the interrupt goes on (an environment stand-in: what
matters here is the order of the calls, not AWS)."""

from __future__ import annotations

from typing import Any
from unittest.mock import MagicMock

import pytest

from offline.verification.scenario import run_main_job


def _table_env(interrupt_after: int) -> tuple[MagicMock, dict[tuple[str, str], dict[str, Any]]]:
    table: dict[tuple[str, str], dict[str, Any]] = {}
    env = MagicMock()
    env.store, env.primary_region, env.replica_regions = "dynamodb", "us-east-2", ("us-west-1",)
    env.sensitive_fields, env.replication_deadline_s, env.capabilities = ("ssn",), 2.0, frozenset()
    env.tenant_regions = {}  # the single-key deployment
    calls = {"n": 0}

    def invoke(region: str, kind: str, event: dict[str, Any]) -> Any:
        calls["n"] += 1
        if calls["n"] > interrupt_after:
            raise KeyboardInterrupt
        for each in ("us-east-2", "us-west-1"):  # written and replicated at once
            table[(each, event["id"])] = {"id": {"S": event["id"]}}
        return MagicMock(result={"ok": True, "version": 1}, calls=None)

    env.invoke.side_effect = invoke
    env.raw_item.side_effect = lambda region, item_id: table.get((region, item_id))
    env.delete_raw_item.side_effect = lambda region, item_id: table.pop((region, item_id), None)
    env.problems.return_value = []
    return env, table


def test_an_interrupted_run_still_deletes_what_it_wrote() -> None:
    env, table = _table_env(interrupt_after=1)
    said: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        run_main_job(env, progress=said.append)
    assert table == {}, "the item written before the interrupt is left behind"
    assert env.delete_raw_item.call_count == 2, "deleted in both regions"
    assert any(line.startswith("PASS  clean-up:") and "wrote 1 items" in line for line in said), said


def test_the_clean_up_fails_when_an_item_will_not_go() -> None:
    env, table = _table_env(interrupt_after=1)
    env.delete_raw_item.side_effect = lambda region, item_id: None  # a delete that does nothing
    said: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        run_main_job(env, progress=said.append)
    assert table, "nothing deleted"
    assert any(line.startswith("FAIL  clean-up:") and "still there after" in line for line in said), said
