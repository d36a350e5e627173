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
        # A named parameter under a new id fails the update (CloudFormation creates the new one first).
        "AWS::SSM::Parameter": {
            "DiscoveryRecordKeyArn4CDC0BC8",
            "DiscoveryRecordOptionsF6FD761F",
            "DiscoveryTableName7F21386F",
        },
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


AURORA_PINNED = {
    "keys-primary": {"AWS::KMS::Key": {"RecordsKeyDBC896B2", "StorageKey322588C8", "SecretsKey5E5644BE"}},
    "keys-replica": {
        "AWS::KMS::ReplicaKey": {"RecordsKeyDBC896B2"},
        "AWS::KMS::Key": {"StorageKey322588C8", "SecretsKey5E5644BE"},
    },
    "database-primary": {
        "AWS::RDS::GlobalCluster": {"GlobalCluster"},
        "AWS::RDS::DBCluster": {"PrimaryClusterA701495C"},
        "AWS::RDS::DBInstance": {"PrimaryInstanceD9E5718A"},
        "AWS::SecretsManager::Secret": {"SecretsMaster4344BB21", "SecretsWriter2CD59448", "SecretsReaderF06A15FF"},
    },
    "database-secondary": {
        "AWS::RDS::DBCluster": {"SecondaryClusterF8A3447C"},
        "AWS::RDS::DBInstance": {"SecondaryInstance7A046471"},
    },
    "network": {"AWS::EC2::VPC": {"NetworkVpc7FB7348F"}},
    "functions": {
        "AWS::SSM::Parameter": PINNED["functions"]["AWS::SSM::Parameter"]
        | {
            "DiscoveryDbNameF4A07F14",
            "DiscoveryDbPort5BEF4BE7",
            "DiscoveryDbReaderEndpointB82E7B1B",
            "DiscoveryDbReaderSecretArn1BA67ED8",
            "DiscoveryDbWriterEndpointC7713BFB",
            "DiscoveryDbWriterSecretArnED3CBB94",
        }
    },
}


def test_logical_ids_of_the_aurora_store_are_pinned(aurora: Synthesized) -> None:
    """A changed id would replace a cluster (a new, empty database), a storage key or a secret."""
    app = aurora
    primary = app.config.primary_region

    def check(tpl: dict, kind: str, where: str) -> None:
        for type_name, ids in AURORA_PINNED[kind].items():
            assert _ids(tpl, type_name) == ids, (where, type_name)

    for region in app.config.regions:
        role = "primary" if region == primary else "replica"
        check(app.raw(app.stacks.keys[region]), f"keys-{role}", region)
        check(
            app.raw(app.stacks.databases[region]), f"database-{'primary' if region == primary else 'secondary'}", region
        )
        check(app.raw(app.stacks.networks[region]), "network", region)
        check(app.raw(app.stacks.functions[region]), "functions", region)


BEACON_KEY_LOGICAL_ID = "BeaconKeyE6CA1D48"


def test_logical_id_of_the_beacon_key_is_pinned(beacons_app: Synthesized) -> None:
    """A changed id would replace the HMAC key: every stored beacon would then name nothing."""
    app = beacons_app
    for region in app.config.regions:
        tpl = app.raw(app.stacks.keys[region])
        kind = "AWS::KMS::Key" if region == app.config.primary_region else "AWS::KMS::ReplicaKey"
        assert BEACON_KEY_LOGICAL_ID in _ids(tpl, kind), region
