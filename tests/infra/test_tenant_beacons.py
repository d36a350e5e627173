"""Tenants with beacons (issue 21): the finder of each region decrypts a tenant's candidates only in that
tenant's session, like the reader: its own role holds no Decrypt at all, its tenant-access role the tenant
keys with the session's tenant's tag and context; the audit expects that role's decrypts of tenant keys
and nothing else of it; every nag pack is clean (the fixture synthesizes with them)."""

from __future__ import annotations

import pytest

from lambda_src.record_crypto.settings import ENV_BEACON_FIELDS, ENV_TENANT_KEYS, ENV_TENANT_ROLE_ARN, TENANT_KEY
from tests.infra.helpers import resources
from tests.infra.synth import ACCOUNT, Synthesized
from tests.infra.test_audit import KEY, READER, WRITER, _event, _matches, _unexpected_rule

TENANT_KEY_ARN = f"arn:aws:kms:us-west-1:{ACCOUNT}:key/mrk-7777"
TENANT_WRITER = f"arn:aws:iam::{ACCOUNT}:role/MrkToolkit/writer/WriterTenantRole"
TENANT_READER = f"arn:aws:iam::{ACCOUNT}:role/MrkToolkit/reader/ReaderTenantRole"
TENANT_FINDER = f"arn:aws:iam::{ACCOUNT}:role/MrkToolkit/reader/finder/FinderTenantRole"
FINDER = f"arn:aws:iam::{ACCOUNT}:role/MrkToolkit/reader/finder/FinderRole"


def _policy(app: Synthesized, region: str, stem: str) -> list[dict]:
    tpl = app.raw(app.stacks.functions[region])
    (policy,) = [
        r["Properties"]["PolicyDocument"]["Statement"]
        for lid, r in resources(tpl, "AWS::IAM::ManagedPolicy").items()
        if lid.startswith(stem)
    ]
    return policy


def test_every_finder_takes_its_tenants_session_and_decrypts_nothing_with_its_own_role(
    tenant_beacons_app: Synthesized,
) -> None:
    app = tenant_beacons_app
    for region, stack in app.stacks.functions.items():
        finder = stack.functions.finder
        assert finder is not None and finder.tenant_role is not None, region
        (function,) = [
            r["Properties"]
            for lid, r in resources(app.raw(stack), "AWS::Lambda::Function").items()
            if lid.startswith("RecordsFinderFunction")
        ]
        env = function["Environment"]["Variables"]
        assert ENV_BEACON_FIELDS in env and ENV_TENANT_KEYS in env
        assert env[ENV_TENANT_ROLE_ARN]["Fn::GetAtt"][0].startswith("RecordsFinderTenantRole"), region
        own = _policy(app, region, "RecordsFinderAccessPolicy")
        actions = sorted(a for s in own for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]))
        # ssm:GetParameter: the backfill state of its region's beacon fields (a lookup's ``complete``)
        expected = ["sts:AssumeRole", "sts:TagSession", "dynamodb:Query", "kms:GenerateMac", "ssm:GetParameter"]
        assert actions == sorted([*expected, "logs:CreateLogStream", "logs:PutLogEvents"]), (region, actions)
        (tenant,) = _policy(app, region, "RecordsFinderTenantAccessPolicy")
        assert tenant["Action"] == "kms:Decrypt"
        equals = tenant["Condition"]["StringEquals"]
        assert equals[f"aws:ResourceTag/{TENANT_KEY}"] == equals[f"kms:EncryptionContext:{TENANT_KEY}"]
        assert equals[f"kms:EncryptionContext:{TENANT_KEY}"] == f"${{aws:PrincipalTag/{TENANT_KEY}}}"


def test_each_regions_unexpected_use_rule_expects_the_finders_tenant_session(tenant_beacons_app: Synthesized) -> None:
    app = tenant_beacons_app
    for region, stack in app.stacks.functions.items():
        rules = {
            r["Properties"]["Name"]: r["Properties"]
            for r in resources(app.raw(stack), "AWS::Events::Rule").values()
            if r["Properties"]["Name"].endswith("unexpected-key-use")
        }
        (rule,) = rules.values()
        _, tenant = rule["EventPattern"]["$or"]
        decrypters = next(
            c["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"][0]["anything-but"]
            for c in tenant["detail"]["$or"]
            if c.get("eventName") == ["Decrypt"]
        )
        reader, finder = stack.functions.reader.tenant_role, stack.functions.finder.tenant_role  # type: ignore[union-attr]
        assert decrypters == [stack.resolve(reader.role_arn), stack.resolve(finder.role_arn)], region  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("name", "role", "key", "expected"),
    [
        ("Decrypt", TENANT_FINDER, TENANT_KEY_ARN, False),  # a tenant's session of the finder's tenant-access role
        ("Decrypt", TENANT_READER, TENANT_KEY_ARN, False),
        ("GenerateDataKey", TENANT_WRITER, TENANT_KEY_ARN, False),
        ("GenerateDataKey", TENANT_FINDER, TENANT_KEY_ARN, True),  # the finder creates no ciphertext
        ("Decrypt", FINDER, TENANT_KEY_ARN, True),  # the finder's own role may not use a tenant key
        ("Decrypt", TENANT_FINDER, KEY, True),  # nor its tenant session the records key
    ],
)
def test_with_tenants_and_beacons_only_the_finders_tenant_session_decrypts_tenant_keys_for_it(
    name: str, role: str, key: str, expected: bool
) -> None:
    pattern = _unexpected_rule(
        tenant_key_arns=[TENANT_KEY_ARN],
        tenant_roles=(TENANT_WRITER, TENANT_READER, TENANT_FINDER),
        finder_role_arn=FINDER,
    )
    assert _matches(pattern, _event(name, role=role, key=key)) is expected
    assert READER and WRITER  # the records key's users, unchanged (tests/infra/test_audit.py)
