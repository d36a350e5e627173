"""Stateful resources keep their logical ids: a change would replace a key or the table."""

from __future__ import annotations

from tests.infra.helpers import resources
from tests.infra.synth import Synthesized

PINNED = {
    "keys-primary": {"AWS::KMS::Key": {"RecordsKeyDBC896B2", "TableKey123F7260"}},
    "keys-replica": {"AWS::KMS::ReplicaKey": {"RecordsKeyDBC896B2"}, "AWS::KMS::Key": {"TableKey123F7260"}},
    "table": {"AWS::DynamoDB::GlobalTable": {"RecordsTableC9B7A30B"}},
    # A new logs or alarm topic key would orphan the retained one; a new topic, its subscriptions.
    "functions": {
        "AWS::KMS::Key": {"RecordsLogsKeyFF7789C9", "AlarmTopicKey0C813E5B"},
        "AWS::SNS::Topic": {"AlarmTopicC2164170"},
    },
}


def _ids(tpl: dict, type_name: str) -> set[str]:
    return set(resources(tpl, type_name))


def test_logical_ids_of_keys_and_table_are_pinned(synthesized: Synthesized) -> None:
    app = synthesized
    primary = app.raw(app.stacks.keys[app.config.primary_region])
    for type_name, ids in PINNED["keys-primary"].items():
        assert _ids(primary, type_name) == ids
    for region in app.config.replica_regions:
        tpl = app.raw(app.stacks.keys[region])
        for type_name, ids in PINNED["keys-replica"].items():
            assert _ids(tpl, type_name) == ids, region
    for type_name, ids in PINNED["table"].items():
        assert _ids(app.raw(app.stacks.table), type_name) == ids
    for region, stack in app.stacks.functions.items():
        for type_name, ids in PINNED["functions"].items():
            assert _ids(app.raw(stack), type_name) == ids, region
