"""Every role the templates define may do exactly its contract (cloud_assembly/contracts.py), as a
whole: everything the policy engine allows it, over every catalogued action and every resource
it could reach, equals what its contract grants. A role whose allowed set grows (or shrinks)
without its contract changing fails here, before anything is deployed; the main job checks the
same on what is deployed (offline/verification/permissions.py).

The edits below change one role's policy the way a bad change would; each must be named, with
the role, the action, the resource and the statement that allows it.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from cloud_assembly.contracts import CONTRACTS
from cloud_assembly.reader import load_assembly
from cloud_assembly.role_access import DeployedRole, DeploymentView, RoleAccess, role_access
from offline.emulator.moto_patches import aws_managed_policy
from review.role_view import deployment_view
from tests.infra.synth import Synthesized


def view_of(app: Synthesized) -> DeploymentView:
    return deployment_view(load_assembly(Path(app.assembly.directory)), managed_policy=aws_managed_policy)


def kinds(view: DeploymentView) -> list[tuple[str, str]]:
    by_stem = {stem: c.kind for c in CONTRACTS for stem in c.roles}
    return sorted((r.region, by_stem.get(r.stem, f"unknown {r.stem}")) for r in view.roles)


def assert_exactly_its_contract(view: DeploymentView) -> list[RoleAccess]:
    out = []
    for role in view.roles:
        access = role_access(role, view)
        assert access.failure() is None, access.failure()
        assert access.contract is not None and any(a.allowed for a in access.asked)
        out.append(access)
    return out


def test_every_role_of_the_dynamodb_store_may_do_exactly_its_contract(synthesized: Synthesized) -> None:
    view = view_of(synthesized)
    regions = synthesized.config.regions
    assert kinds(view) == sorted((r, k) for r in regions for k in ("reader", "writer"))
    for access in assert_exactly_its_contract(view):
        regions_used = {a.target.region for a in access.asked if a.allowed}
        assert regions_used <= {"", access.role.region}, (access.title, regions_used)


def test_every_role_of_the_aurora_store_may_do_exactly_its_contract(aurora: Synthesized) -> None:
    view = view_of(aurora)
    primary, regions = aurora.config.primary_region, aurora.config.regions
    expected = [(r, k) for r in regions for k in ("reader", "writer", "rds-monitoring", "flow-logs")]
    expected += [(primary, "schema-setup"), (primary, "schema-provider"), (primary, "secret-rotation")]
    assert kinds(view) == sorted(expected)
    assert_exactly_its_contract(view)


# -- edits: each must be found ------------------------------------------------------------------
@pytest.fixture(scope="module")
def default_view(default_app: Synthesized) -> DeploymentView:
    return view_of(default_app)


def role(view: DeploymentView, region: str, stem: str) -> DeployedRole:
    return next(r for r in view.roles if r.region == region and r.stem == stem)


def edited(view: DeploymentView, region: str, stem: str, *statements: dict[str, Any]) -> RoleAccess:
    """``role_access`` of one role with ``statements`` appended to its first policy."""
    target = role(view, region, stem)
    policies = copy.deepcopy(list(target.policies))
    policies[0][1]["Statement"].extend(statements)
    changed = dataclasses.replace(target, policies=tuple(policies))
    others = tuple(changed if r is target else r for r in view.roles)
    return role_access(changed, dataclasses.replace(view, roles=others, cache={}))


def allow(action: Any, resource: Any, sid: str = "Added") -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": action, "Resource": resource}


def beyond(access: RoleAccess) -> set[tuple[str, str]]:
    return {(a.action, a.target.arn) for a in access.beyond}


TABLE_WEST = "arn:aws:dynamodb:us-west-1:<account>:table/mrk-toolkit-records"


def test_a_reader_that_may_write_or_delete_items(default_view: DeploymentView) -> None:
    access = edited(
        default_view, "us-west-1", "RecordsReaderRole", allow(["dynamodb:PutItem", "dynamodb:DeleteItem"], TABLE_WEST)
    )
    assert {("dynamodb:PutItem", TABLE_WEST), ("dynamodb:DeleteItem", TABLE_WEST)} <= beyond(access)
    assert not access.missing
    failure = access.failure() or ""
    assert failure.startswith("the reader's role in us-west-1 (MrkToolkit-Functions-us-west-1/RecordsReaderRole")
    assert "dynamodb:DeleteItem on MrkToolkit-Table/RecordsTable (arn:aws:dynamodb:us-west-1:" in failure
    assert "allowed by MrkToolkit-Functions-us-west-1-RecordsReaderAccessPolicy3658CB15 Added" in failure


def test_a_reader_whose_decrypt_names_any_key(default_view: DeploymentView) -> None:
    """Resource "*" with the reader's own context condition: every key of the account, the other
    region's multi-region key and keys not the toolkit's (the key policies of the toolkit's other
    keys still refuse it)."""
    reader = role(default_view, "us-west-1", "RecordsReaderRole")
    statement = copy.deepcopy(reader.policies[0][1]["Statement"][0])
    assert statement["Action"] == "kms:Decrypt"
    statement.update(Sid="AnyKey", Resource="*")
    found = beyond(edited(default_view, "us-west-1", "RecordsReaderRole", statement))
    other_mrk = next(r.arn for r in default_view.resources if r.stem == "RecordsKey" and r.region == "us-east-2")
    assert ("kms:Decrypt", other_mrk) in found
    assert ("kms:Decrypt", "arn:aws:kms:us-west-1:<account>:key/00000000-0000-0000-0000-000000000000") in found
    assert ("kms:Decrypt", "*") in found
    assert any(arn.startswith("arn:aws:kms:us-west-1:210987654321:") for _, arn in found), "another account's key"


def test_a_reader_decrypting_another_regions_key(default_view: DeploymentView) -> None:
    other_mrk = next(r.arn for r in default_view.resources if r.stem == "RecordsKey" and r.region == "us-east-2")
    reader = role(default_view, "us-west-1", "RecordsReaderRole")
    statement = copy.deepcopy(reader.policies[0][1]["Statement"][0])
    statement.update(Sid="OtherRegion", Resource=other_mrk)
    access = edited(default_view, "us-west-1", "RecordsReaderRole", statement)
    assert {(a.action, a.target.arn, a.variant.tag) for a in access.beyond} == {
        ("kms:Decrypt", other_mrk, "record-context")
    }
    assert "(with the toolkit's encryption context), allowed by key policy ReadersDecryptWithRecordContext" in (
        access.failure() or ""
    )


def test_a_writer_that_may_decrypt(default_view: DeploymentView) -> None:
    writer = role(default_view, "us-east-2", "RecordsWriterRole")
    statement = copy.deepcopy(writer.policies[0][1]["Statement"][0])
    statement.update(Sid="AlsoDecrypt", Action=["kms:GenerateDataKey", "kms:Decrypt"])
    # The role policy alone changes nothing AWS would allow: the key policy grants Decrypt to
    # readers only, so the writer may still do exactly its contract.
    assert edited(default_view, "us-east-2", "RecordsWriterRole", statement).failure() is None
    # The key policy's writers' statement too: now the writer may decrypt every record.
    key_policies = copy.deepcopy(dict(default_view.key_policies))
    mrk = next(r.arn for r in default_view.resources if r.stem == "RecordsKey" and r.region == "us-east-2")
    (writers,) = [s for s in key_policies[mrk]["Statement"] if s["Sid"] == "WritersGenerateDataKeysWithRecordContext"]
    writers["Action"] = ["kms:GenerateDataKey", "kms:Decrypt"]
    access = edited(
        dataclasses.replace(default_view, key_policies=key_policies), "us-east-2", "RecordsWriterRole", statement
    )
    assert {(a.action, a.target.arn, a.variant.tag) for a in access.beyond} == {("kms:Decrypt", mrk, "record-context")}
    assert (
        "kms:Decrypt on MrkToolkit-Keys-us-east-2/RecordsKey (" + mrk + ") (with the toolkit's encryption context), "
        "allowed by key policy WritersGenerateDataKeysWithRecordContext delegates to IAM and "
        "MrkToolkit-Functions-us-east-2-RecordsWriterAccessPolicyB1DFA622 AlsoDecrypt"
    ) in (access.failure() or "")


def test_a_role_given_every_dynamodb_action(default_view: DeploymentView) -> None:
    access = edited(default_view, "us-west-1", "RecordsWriterRole", allow("dynamodb:*", TABLE_WEST, "Everything"))
    actions = {a for a, arn in beyond(access) if arn == TABLE_WEST}
    assert {"dynamodb:*", "dynamodb:DeleteTable", "dynamodb:Scan", "dynamodb:ConditionCheckItem"} <= actions
    assert "dynamodb:PutItem" not in actions  # in its contract
    assert len(access.beyond) > 150


def test_a_grant_the_catalogue_does_not_know_is_found_by_its_name(default_view: DeploymentView) -> None:
    bucket = "arn:aws:s3:::somebody-elses-bucket/*"
    found = beyond(edited(default_view, "us-west-1", "RecordsReaderRole", allow("s3:GetObject", bucket)))
    assert ("s3:GetObject", bucket) in found


def test_a_role_that_lost_its_grant(default_view: DeploymentView) -> None:
    target = role(default_view, "us-west-1", "RecordsWriterRole")
    policies = copy.deepcopy(list(target.policies))
    policies[0][1]["Statement"] = [s for s in policies[0][1]["Statement"] if s.get("Sid") != "LocalTableReplica"]
    changed = dataclasses.replace(target, policies=tuple(policies))
    access = role_access(changed, dataclasses.replace(default_view, cache={}))
    assert {(a.action, a.target.arn) for a in access.missing} == {("dynamodb:PutItem", TABLE_WEST)}
    assert "is refused what its contract grants: dynamodb:PutItem on" in (access.failure() or "")


def test_context_conditions_dropped_on_both_sides(default_view: DeploymentView) -> None:
    """AWS needs the key and the role policy to allow: with both conditions gone, the reader may
    decrypt with no context or another table's."""
    target = role(default_view, "us-west-1", "RecordsReaderRole")
    policies = copy.deepcopy(list(target.policies))
    del policies[0][1]["Statement"][0]["Condition"]
    key_policies = copy.deepcopy(dict(default_view.key_policies))
    for policy in key_policies.values():
        for stmt in policy.get("Statement", []):
            for pairs in (stmt.get("Condition") or {}).values():
                for key in [k for k in pairs if k.startswith("kms:EncryptionContext:")]:
                    del pairs[key]
    changed = dataclasses.replace(target, policies=tuple(policies))
    view = dataclasses.replace(default_view, key_policies=key_policies, cache={})
    access = role_access(changed, view)
    tags = {a.variant.tag for a in access.beyond if a.action == "kms:Decrypt" and ":us-west-1:" in a.target.arn}
    assert {"no-context", "foreign-context"} <= tags


def test_a_role_without_a_contract(default_view: DeploymentView) -> None:
    stranger = dataclasses.replace(role(default_view, "us-west-1", "RecordsReaderRole"), logical_id="AuditRole0A1B2C3D")
    access = role_access(stranger, default_view)
    failure = access.failure() or ""
    assert failure.startswith("the role MrkToolkit-Functions-us-west-1/AuditRole in us-west-1"), failure
    assert "has no contract in cloud_assembly/contracts.py" in failure
    assert "dynamodb:GetItem on MrkToolkit-Table/RecordsTable" in failure
