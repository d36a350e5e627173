"""Tenant-scoped credentials, decided by the one policy engine: a session tagged ``tenant`` may use a
KMS key only where the key's ``tenant`` tag (``aws:ResourceTag/tenant``) and the request's encryption
context (``kms:EncryptionContext:tenant``) both equal ``${aws:PrincipalTag/tenant}``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from lambda_src.record_crypto.settings import TENANT_KEY
from offline.emulator.server import EmulatedAws
from tests.offline.test_sts import LAMBDA_TRUST, ROOT, allow, client, refused, role, sts_as, trust

ACCOUNT = "123456789012"
REGION = "us-east-1"
TENANT_VARIABLE = f"${{aws:PrincipalTag/{TENANT_KEY}}}"


@pytest.fixture
def aws() -> Iterator[EmulatedAws]:
    with EmulatedAws(ACCOUNT) as emulated:
        yield emulated


def tenant_keys(aws: EmulatedAws) -> dict[str, str]:
    """tenant -> key ARN; each key policy delegates to IAM (the account), as the toolkit's key policies
    do for use with conditions."""
    kms = aws.client("kms", REGION)
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"}],
    }
    return {
        tenant: kms.create_key(
            Policy=json.dumps(policy), MultiRegion=True, Tags=[{"TagKey": TENANT_KEY, "TagValue": tenant}]
        )["KeyMetadata"]["Arn"]
        for tenant in ("acme", "globex")
    }


def tenant_policy(key_arns: list[str], *, conditions: dict[str, Any]) -> dict[str, Any]:
    policy = allow(["kms:GenerateDataKey", "kms:Decrypt"], key_arns)
    policy["Statement"][0]["Condition"] = conditions
    return policy


SCOPED = {
    "StringEquals": {
        f"aws:ResourceTag/{TENANT_KEY}": TENANT_VARIABLE,
        f"kms:EncryptionContext:{TENANT_KEY}": TENANT_VARIABLE,
    }
}


def session(aws: EmulatedAws, policy: dict[str, Any], tenant: str) -> Any:
    tenant_role = role(aws, "tenant-access", trust(ROOT, actions=("sts:AssumeRole", "sts:TagSession")), policy)
    broker = role(aws, "writer", LAMBDA_TRUST, allow(["sts:AssumeRole", "sts:TagSession"], tenant_role))
    creds = sts_as(aws, broker).assume_role(
        RoleArn=tenant_role, RoleSessionName=tenant, Tags=[{"Key": TENANT_KEY, "Value": tenant}]
    )["Credentials"]
    return client(aws, "kms", creds)


def generate(kms: Any, key_arn: str, tenant: str) -> Any:
    return kms.generate_data_key(KeyId=key_arn, KeySpec="AES_256", EncryptionContext={TENANT_KEY: tenant})


def test_a_tenant_session_uses_its_own_key_with_its_own_context_only(aws: EmulatedAws) -> None:
    keys = tenant_keys(aws)
    kms = session(aws, tenant_policy(sorted(keys.values()), conditions=SCOPED), "acme")
    blob = generate(kms, keys["acme"], "acme")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob, KeyId=keys["acme"], EncryptionContext={TENANT_KEY: "acme"})["Plaintext"]
    assert "kms:GenerateDataKey" in refused(lambda: generate(kms, keys["globex"], "globex"))  # another tenant's key
    assert "kms:GenerateDataKey" in refused(lambda: generate(kms, keys["acme"], "globex"))  # another tenant's context
    assert "kms:GenerateDataKey" in refused(lambda: generate(kms, keys["globex"], "acme"))  # its context, wrong key


def test_without_the_tag_condition_a_session_crosses_tenants(aws: EmulatedAws) -> None:
    """The non-compliant case: only the context condition; the tenant's session uses the other's key."""
    keys = tenant_keys(aws)
    context_only = {"StringEquals": {f"kms:EncryptionContext:{TENANT_KEY}": TENANT_VARIABLE}}
    kms = session(aws, tenant_policy(sorted(keys.values()), conditions=context_only), "acme")
    assert generate(kms, keys["globex"], "acme")["CiphertextBlob"]


def test_an_untagged_session_is_refused_everywhere(aws: EmulatedAws) -> None:
    """No session tag: the variable is not in the request, and the condition fails closed."""
    keys = tenant_keys(aws)
    tenant_role = role(aws, "tenant-access", trust(ROOT), tenant_policy(sorted(keys.values()), conditions=SCOPED))
    broker = role(aws, "writer", LAMBDA_TRUST, allow(["sts:AssumeRole"], tenant_role))
    creds = sts_as(aws, broker).assume_role(RoleArn=tenant_role, RoleSessionName="untagged")["Credentials"]
    kms = client(aws, "kms", creds)
    for tenant, arn in keys.items():
        assert "kms:GenerateDataKey" in refused(lambda arn=arn, tenant=tenant: generate(kms, arn, tenant))
