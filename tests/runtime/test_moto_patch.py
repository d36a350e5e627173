"""The moto patches (offline/emulator/moto_patches.py) must stay needed, and must be idempotent."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from offline.emulator.moto_patches import (
    apply_moto_mrk_patch,
    apply_moto_patches,
    needs_moto_mrk_patch,
    needs_moto_primary_region_patch,
    needs_moto_rotation_patch,
)
from offline.emulator.server import ADMINISTRATOR_ACCESS


def test_installed_moto_still_needs_the_mrk_patch() -> None:
    assert needs_moto_mrk_patch(), (
        "moto now round-trips multi-region key ids in its ciphertext blobs: "
        "remove offline/emulator/moto_patches.py and its callers"
    )


def test_patch_round_trips_an_mrk_id_and_is_idempotent() -> None:
    from moto.kms import utils

    apply_moto_mrk_patch()
    patched = utils._serialize_ciphertext_blob
    apply_moto_mrk_patch()
    assert utils._serialize_ciphertext_blob is patched, "a second apply changes nothing"
    key_id = utils.generate_key_id(multi_region=True)
    blob = utils._serialize_ciphertext_blob(
        ciphertext=utils.Ciphertext(
            key_id=key_id, iv=b"\1" * utils.IV_LEN, ciphertext=b"abc", tag=b"\2" * utils.TAG_LEN
        )
    )
    back = utils._deserialize_ciphertext_blob(ciphertext_blob=blob)
    assert (back.key_id, back.ciphertext, back.iv) == (key_id, b"abc", b"\1" * utils.IV_LEN)


def test_installed_moto_still_needs_the_rotation_patch() -> None:
    assert needs_moto_rotation_patch(), (
        "moto now changes key material on RotateKeyOnDemand: remove apply_moto_rotation_patch and check "
        "that multi-region replicas follow the primary's rotation in moto"
    )


def test_rotation_gives_the_primary_and_its_replicas_new_material_and_old_ciphertext_still_decrypts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    apply_moto_patches()
    with mock_aws():
        primary, replica = boto3.client("kms", "us-east-2"), boto3.client("kms", "us-west-1")
        key = primary.create_key(MultiRegion=True)["KeyMetadata"]
        copy = primary.replicate_key(KeyId=key["KeyId"], ReplicaRegion="us-west-1")["ReplicaKeyMetadata"]
        before = primary.encrypt(KeyId=key["Arn"], Plaintext=b"before")["CiphertextBlob"]
        primary.rotate_key_on_demand(KeyId=key["Arn"])
        after = primary.encrypt(KeyId=key["Arn"], Plaintext=b"after")["CiphertextBlob"]

        from moto.kms.models import kms_backends

        materials = {
            region: kms_backends["123456789012"][region].keys[key["KeyId"]].key_material
            for region in ("us-east-2", "us-west-1")
        }
        assert materials["us-east-2"] == materials["us-west-1"], "the replica follows the primary's rotation"
        for client, arn in ((primary, key["Arn"]), (replica, copy["Arn"])):
            assert client.decrypt(CiphertextBlob=before, KeyId=arn)["Plaintext"] == b"before"
            assert client.decrypt(CiphertextBlob=after, KeyId=arn)["Plaintext"] == b"after"
        with pytest.raises(replica.exceptions.ClientError, match="replica"):
            replica.rotate_key_on_demand(KeyId=copy["Arn"])
        assert len(primary.list_key_rotations(KeyId=key["Arn"])["Rotations"]) == 1


def test_installed_moto_still_needs_the_replica_alias_patch() -> None:
    from offline.emulator.moto_patches import needs_moto_replica_alias_patch

    assert needs_moto_replica_alias_patch(), (
        "moto's ReplicateKey no longer shares the primary's aliases: remove apply_moto_replica_alias_patch"
    )


@mock_aws
def test_a_replica_has_its_own_aliases_and_deleting_one_leaves_the_primarys() -> None:
    apply_moto_patches()
    primary = boto3.client("kms", region_name="us-east-2")
    replica = boto3.client("kms", region_name="eu-west-1")
    key_id = primary.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    primary.create_alias(AliasName="alias/records", TargetKeyId=key_id)
    primary.replicate_key(KeyId=key_id, ReplicaRegion="eu-west-1")
    assert replica.list_aliases(KeyId=key_id)["Aliases"] == [], "KMS's ReplicateKey copies no alias"
    replica.create_alias(AliasName="alias/records", TargetKeyId=key_id)
    replica.delete_alias(AliasName="alias/records")
    assert [a["AliasName"] for a in primary.list_aliases(KeyId=key_id)["Aliases"]] == ["alias/records"]


def test_installed_moto_still_needs_the_primary_region_patch() -> None:
    assert needs_moto_primary_region_patch(), (
        "moto now implements UpdatePrimaryRegion: remove apply_moto_primary_region_patch and check that its "
        "related multi-region keys no longer share one MultiRegionConfiguration"
    )


def _types(clients: dict[str, object], key_id: str) -> dict[str, tuple[str, str]]:
    out = {}
    for region, client in clients.items():
        config = client.describe_key(KeyId=key_id)["KeyMetadata"]["MultiRegionConfiguration"]  # type: ignore[attr-defined]
        out[region] = (config["MultiRegionKeyType"], config["PrimaryKey"]["Region"])
    return out


def test_update_primary_region_promotes_a_replica_and_keeps_id_material_and_old_ciphertext(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """UpdatePrimaryRegion as the KMS API reference describes it: called in the current primary's
    region; the replica in PrimaryRegion becomes the primary, the old primary a replica; one key id,
    one material; what was encrypted before decrypts everywhere; primary-only operations follow."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    apply_moto_patches()
    regions = ("us-east-2", "us-west-1", "eu-west-1")
    with mock_aws():
        kms = {r: boto3.client("kms", r) for r in regions}
        key = kms["us-east-2"].create_key(MultiRegion=True)["KeyMetadata"]
        kms["us-east-2"].enable_key_rotation(KeyId=key["KeyId"])
        for region in regions[1:]:
            kms["us-east-2"].replicate_key(KeyId=key["KeyId"], ReplicaRegion=region)
        before = kms["us-east-2"].encrypt(KeyId=key["KeyId"], Plaintext=b"before")["CiphertextBlob"]
        # moto alone marks the primary REPLICA once a replica is described: each key has its own now.
        assert _types(kms, key["KeyId"]) == {
            "us-east-2": ("PRIMARY", "us-east-2"),
            "us-west-1": ("REPLICA", "us-east-2"),
            "eu-west-1": ("REPLICA", "us-east-2"),
        }
        with pytest.raises(kms["us-west-1"].exceptions.UnsupportedOperationException, match=r"call .* in us-east-2"):
            kms["us-west-1"].update_primary_region(KeyId=key["KeyId"], PrimaryRegion="us-west-1")
        with pytest.raises(kms["us-east-2"].exceptions.NotFoundException, match="no replica key in ap-south-1"):
            kms["us-east-2"].update_primary_region(KeyId=key["KeyId"], PrimaryRegion="ap-south-1")

        kms["us-east-2"].update_primary_region(KeyId=key["Arn"], PrimaryRegion="us-west-1")

        assert _types(kms, key["KeyId"]) == {
            "us-east-2": ("REPLICA", "us-west-1"),
            "us-west-1": ("PRIMARY", "us-west-1"),
            "eu-west-1": ("REPLICA", "us-west-1"),
        }
        config = kms["eu-west-1"].describe_key(KeyId=key["KeyId"])["KeyMetadata"]["MultiRegionConfiguration"]
        assert config["PrimaryKey"]["Arn"] == key["Arn"].replace("us-east-2", "us-west-1")
        assert sorted(r["Region"] for r in config["ReplicaKeys"]) == ["eu-west-1", "us-east-2"]
        for region, client in kms.items():
            meta = client.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
            assert meta["KeyId"] == key["KeyId"] and meta["Arn"].split(":")[3] == region
            assert client.decrypt(CiphertextBlob=before, KeyId=meta["Arn"])["Plaintext"] == b"before"
        assert kms["us-west-1"].get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is True
        # Primary-only operations follow the primary: the new one rotates, the old one is refused.
        kms["us-west-1"].rotate_key_on_demand(KeyId=key["KeyId"])
        with pytest.raises(kms["us-east-2"].exceptions.ClientError, match="replica"):
            kms["us-east-2"].rotate_key_on_demand(KeyId=key["KeyId"])
        with pytest.raises(kms["us-east-2"].exceptions.UnsupportedOperationException, match="in us-west-1"):
            kms["us-east-2"].update_primary_region(KeyId=key["KeyId"], PrimaryRegion="us-east-2")
        # ... and back, as the runbook reconciles: the templates' primary region holds the primary again.
        kms["us-west-1"].update_primary_region(KeyId=key["KeyId"], PrimaryRegion="us-east-2")
        assert _types(kms, key["KeyId"])["us-east-2"] == ("PRIMARY", "us-east-2")
        after = kms["eu-west-1"].encrypt(KeyId=key["KeyId"], Plaintext=b"after")["CiphertextBlob"]
        for client in kms.values():
            assert client.decrypt(CiphertextBlob=before)["Plaintext"] == b"before"
            assert client.decrypt(CiphertextBlob=after)["Plaintext"] == b"after"


MONITORING = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"


def test_an_aws_managed_policy_attaches_with_its_document() -> None:
    """RDS enhanced monitoring's role holds AWS's policy, as on AWS (moto alone refuses the attach
    unless it loads all ~1,400 AWS managed policies)."""
    from offline.emulator.moto_patches import aws_managed_policy

    apply_moto_patches()
    apply_moto_patches()
    with mock_aws():
        iam = boto3.client("iam", region_name="us-east-1")
        iam.create_role(RoleName="monitoring", AssumeRolePolicyDocument="{}")
        iam.attach_role_policy(RoleName="monitoring", PolicyArn=MONITORING)
        (attached,) = iam.list_attached_role_policies(RoleName="monitoring")["AttachedPolicies"]
        assert attached["PolicyArn"] == MONITORING
        version = iam.get_policy(PolicyArn=MONITORING)["Policy"]["DefaultVersionId"]
        document = iam.get_policy_version(PolicyArn=MONITORING, VersionId=version)["PolicyVersion"]["Document"]
    assert document == aws_managed_policy(MONITORING)
    assert document["Statement"][0]["Resource"] == ["arn:aws:logs:*:*:log-group:RDS*"]
    assert aws_managed_policy("arn:aws:iam::aws:policy/AmazonRDSEnhancedMonitoringRole") is None  # wrong path
    with mock_aws():  # a user too: `python -m offline up`'s IAM user holds AdministratorAccess
        iam = boto3.client("iam", region_name="us-east-1")
        iam.create_user(UserName="Administrator")
        iam.attach_user_policy(UserName="Administrator", PolicyArn=ADMINISTRATOR_ACCESS)
        (attached,) = iam.list_attached_user_policies(UserName="Administrator")["AttachedPolicies"]
        assert attached["PolicyArn"] == ADMINISTRATOR_ACCESS
    assert aws_managed_policy(ADMINISTRATOR_ACCESS) == {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }
    assert aws_managed_policy("arn:aws:iam::aws:policy/service-role/NoSuchPolicy") is None


def test_installed_moto_still_needs_the_aws_managed_key_patch() -> None:
    from offline.emulator.moto_patches import needs_moto_aws_managed_key_patch

    assert needs_moto_aws_managed_key_patch(), (
        "moto's DynamoDB default key is no longer customer-managed: remove apply_moto_aws_managed_key_patch"
    )


@mock_aws
def test_a_table_without_its_own_key_is_encrypted_with_an_aws_managed_key() -> None:
    apply_moto_patches()
    ddb, kms = boto3.client("dynamodb", region_name="us-west-1"), boto3.client("kms", region_name="us-west-1")
    table = ddb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        SSESpecification={"Enabled": True, "SSEType": "KMS"},
    )["TableDescription"]
    key = kms.describe_key(KeyId=table["SSEDescription"]["KMSMasterKeyArn"])["KeyMetadata"]
    assert key["KeyManager"] == "AWS", key


def test_moto_still_leaves_the_default_secret_version_behind() -> None:
    """When this fails, moto's UpdateSecretVersionStage moves the default version with AWSCURRENT:
    remove apply_moto_secret_stage_patch."""
    from offline.emulator.moto_patches import needs_moto_secret_stage_patch

    assert needs_moto_secret_stage_patch(), "moto fixed UpdateSecretVersionStage: drop the secret stage patch"


def test_the_secret_stage_patch_makes_the_current_version_the_default() -> None:
    from moto.secretsmanager.models import SecretsManagerBackend

    from offline.emulator.moto_patches import apply_moto_secret_stage_patch

    apply_moto_secret_stage_patch()
    backend = SecretsManagerBackend("us-east-1", "000000000000")
    backend.create_secret(
        name="s",
        secret_string="old",
        secret_binary=None,
        description=None,
        tags=None,
        kms_key_id=None,
        client_request_token=None,
        replica_regions=[],
        force_overwrite=False,
    )
    old, new = backend.secrets["s"].default_version_id, "22222222-2222-2222-2222-222222222222"
    backend.put_secret_value("s", "new", None, new, ["AWSPENDING"])
    backend.update_secret_version_stage("s", "AWSCURRENT", old, new)
    assert backend.get_secret_value("s", None, None)["SecretString"] == "new"
