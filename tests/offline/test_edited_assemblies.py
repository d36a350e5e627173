"""The main job on edited assemblies: each edit AWS would refuse or expose makes the run fail
with a line that says what is wrong (issue 10), and a configured account deploys offline.

Every test edits a copy of one synthesized assembly (session fixture), runs the main job on it
and asserts the failing check and its line. On the code before issue 10 each of these runs
passed (except the configured account, which failed at the first write). Since issue 19 the
check that every role may do exactly its contract runs too (tests/offline/test_edited_permissions.py
has the edits it alone finds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stacks.synthesize import synthesize
from tests.offline.edits import drop_condition_keys, edited, failures, resources, run

pytestmark = pytest.mark.e2e
KEYS_WEST, FUNCTIONS_WEST, TABLE = "MrkToolkit-Keys-us-west-1", "MrkToolkit-Functions-us-west-1", "MrkToolkit-Table"


def _failed(assembly: Path, tmp_path: Path, edits: dict[str, Any]) -> dict[str, str]:
    """The main job on a copy of ``assembly`` with ``edits`` applied: its failed checks and their lines."""
    return failures(run(edited(assembly, tmp_path / "cdk.out", edits), tmp_path))


def _replica(template: dict[str, Any], region: str) -> dict[str, Any]:
    ((table,),) = [resources(template, "AWS::DynamoDB::GlobalTable")]
    return next(r for r in table["Properties"]["Replicas"] if r["Region"] == region)


def _sse_statement(template: dict[str, Any]) -> dict[str, Any]:
    (key,) = resources(template, "AWS::KMS::Key", "TableKey")
    return next(s for s in key["Properties"]["KeyPolicy"]["Statement"] if "kms:ViaService" in str(s))


def test_a_configured_account_is_stood_up_in_that_account(tmp_path: Path) -> None:
    cdk_out = synthesize({"mrk-toolkit:account": "111111111111"}, str(tmp_path / "cdk.out"))
    report = run(cdk_out, tmp_path)
    assert report.ok, report.render()
    assert "account 111111111111" in report.render()


def test_replica_encrypted_with_the_primary_regions_sse_key(default_assembly: Path, tmp_path: Path) -> None:
    def use_primary_key(template: dict[str, Any]) -> None:
        _replica(template, "us-west-1")["SSESpecification"] = _replica(template, "us-east-2")["SSESpecification"]

    failed = _failed(default_assembly, tmp_path, {TABLE: use_primary_key})
    line = failed["deployed: the table replica in us-west-1 is encrypted with a key of us-west-1"]
    assert "the us-west-1 replica is encrypted with a key of us-east-2" in line, line
    read = failed["reader decrypts in us-west-1 after replication"]
    assert "inaccessible" in read and "DynamoDB can use only a KMS key of us-west-1" in read, read


def test_point_in_time_recovery_off_on_a_replica(default_assembly: Path, tmp_path: Path) -> None:
    def pitr_off(template: dict[str, Any]) -> None:
        _replica(template, "us-west-1")["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] = False

    failed = _failed(default_assembly, tmp_path, {TABLE: pitr_off})
    assert set(failed) == {"deployed: point-in-time recovery is on in us-west-1"}, failed
    assert "point-in-time recovery is DISABLED on the us-west-1 replica" in next(iter(failed.values()))


def test_deletion_protection_off_on_a_replica(default_assembly: Path, tmp_path: Path) -> None:
    def unprotected(template: dict[str, Any]) -> None:
        _replica(template, "us-west-1")["DeletionProtectionEnabled"] = False

    failed = _failed(default_assembly, tmp_path, {TABLE: unprotected})
    assert failed == {"deployed: deletion protection is on in us-west-1": "deletion protection is off in us-west-1"}


def test_sse_key_policy_without_via_service(default_assembly: Path, tmp_path: Path) -> None:
    def anywhere(template: dict[str, Any]) -> None:
        assert drop_condition_keys(template, "kms:ViaService", kinds=("KeyPolicy",)) == 1

    failed = _failed(default_assembly, tmp_path, {KEYS_WEST: anywhere})
    line = failed["deployed: the SSE key in us-west-1 is usable only through DynamoDB"]
    assert "usable outside DynamoDB by a principal IAM allows" in line, line


def test_sse_key_policy_naming_another_regions_dynamodb(default_assembly: Path, tmp_path: Path) -> None:
    def other_region(template: dict[str, Any]) -> None:
        _sse_statement(template)["Condition"]["StringEquals"]["kms:ViaService"] = "dynamodb.us-east-2.amazonaws.com"

    failed = _failed(default_assembly, tmp_path, {KEYS_WEST: other_region})
    line = failed["deployed: the SSE key in us-west-1 is usable only through DynamoDB"]
    assert "DynamoDB in us-west-1 cannot use the SSE key" in line, line
    read = failed["reader decrypts in us-west-1 after replication"]
    assert "does not let" in read and "use it through DynamoDB" in read, read


def test_key_and_role_policies_without_encryption_context_conditions(default_assembly: Path, tmp_path: Path) -> None:
    def unbound(template: dict[str, Any]) -> None:
        assert drop_condition_keys(template, "kms:EncryptionContext:", kinds=("KeyPolicy", "PolicyDocument")) >= 3

    edits = {KEYS_WEST: unbound, FUNCTIONS_WEST: unbound}
    failed = _failed(default_assembly, tmp_path, edits)
    for kind, action in (("reader", "kms:Decrypt"), ("writer", "kms:GenerateDataKey")):
        line = failed[f"KMS refuses the {kind}'s role in us-west-1 a foreign encryption context"]
        assert f"the emulated KMS allowed the {kind}'s role {action} with" in line, line
    key_line = failed["deployed: the MRK key policy in us-west-1 binds use to the encryption context"]
    assert "the key policy lets" in key_line, key_line
    role_line = failed["deployed: the role policies in us-west-1 bind MRK use to the encryption context"]
    assert "the role policy lets" in role_line, role_line
    assert not any("us-east-2" in name for name in failed), failed


@pytest.mark.parametrize(("kind", "expected"), [("KeyPolicy", "key policy"), ("PolicyDocument", "role policies")])
def test_only_one_side_losing_the_context_conditions(
    default_assembly: Path, tmp_path: Path, kind: str, expected: str
) -> None:
    """AWS needs both to allow, so the end-to-end probes still pass; the read-back names the side."""

    def unbound(template: dict[str, Any]) -> None:
        drop_condition_keys(template, "kms:EncryptionContext:", kinds=(kind,))

    stack = KEYS_WEST if kind == "KeyPolicy" else FUNCTIONS_WEST
    failed = _failed(default_assembly, tmp_path, {stack: unbound})
    name = (
        "deployed: the MRK key policy in us-west-1 binds use to the encryption context"
        if kind == "KeyPolicy"
        else "deployed: the role policies in us-west-1 bind MRK use to the encryption context"
    )
    assert set(failed) == {name}, (expected, failed)


def test_a_deny_the_engine_does_not_understand_denies(default_assembly: Path, tmp_path: Path) -> None:
    def odd_deny(template: dict[str, Any]) -> None:
        (policy,) = resources(template, "AWS::IAM::ManagedPolicy", "ReaderAccessPolicy")
        policy["Properties"]["PolicyDocument"]["Statement"].append(
            {
                "Effect": "Deny",
                "Action": "kms:*",
                "Resource": "*",
                # aws:username is not in a role session's request: the engine cannot decide this.
                "Condition": {"StringNotEquals": {"aws:PrincipalArn": "${aws:username}"}},
            }
        )

    failed = _failed(default_assembly, tmp_path, {FUNCTIONS_WEST: odd_deny})
    line = failed["reader decrypts in us-west-1 after replication"]
    assert "explicit deny" in line and "not understood" in line, line


def test_the_writers_read_without_its_attribute_conditions(default_assembly: Path, tmp_path: Path) -> None:
    """The writer's GetItem is limited to the key and the version; unlimited, it could read every
    plaintext attribute: the read-back says so (its own code still works, so only that check fails)."""

    def unlimited(template: dict[str, Any]) -> None:
        assert drop_condition_keys(template, "dynamodb:", kinds=("PolicyDocument",)) == 2

    failed = _failed(default_assembly, tmp_path, {FUNCTIONS_WEST: unlimited})
    name = "deployed: in us-west-1 the writer's role may read the stored version and nothing else"
    contract = "deployed: the writer's role in us-west-1 may do exactly its contract"
    assert set(failed) == {name, contract}, failed
    assert "the writer's role can GetItem of the whole item" in failed[name], failed[name]
    line = failed[contract]
    assert "1 action(s) (dynamodb:GetItem): dynamodb:GetItem on MrkToolkit-Table/RecordsTable" in line, line
    assert "(every attribute | projecting id, _version and another attribute)" in line, line


OTHER_KEY = "arn:aws:kms:us-west-1:123456789012:key/mrk-0123456789abcdef0123456789abcdef"


def _discovery_names_another_key(template: dict[str, Any]) -> None:
    (key,) = resources(template, "AWS::SSM::Parameter", "DiscoveryRecordKeyArn")
    key["Properties"]["Value"] = OTHER_KEY


def _discovery_without_table_name(template: dict[str, Any]) -> None:
    (table,) = [lid for lid in template["Resources"] if lid.startswith("DiscoveryTableName")]
    del template["Resources"][table]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            _discovery_names_another_key,
            f"/MrkToolkit/us-west-1/record-key-arn is {OTHER_KEY}, the deployed records key",
        ),
        (_discovery_without_table_name, "missing in us-west-1: /MrkToolkit/us-west-1/table-name"),
    ],
)
def test_discovery_parameters_naming_another_key_or_missing_fail_the_read_back(
    default_assembly: Path, tmp_path: Path, edit: Any, expected: str
) -> None:
    """An application that discovers the deployment uses what the parameters say: a wrong key ARN or a
    missing parameter is named (the functions still work, so only that check fails)."""
    failed = _failed(default_assembly, tmp_path, {FUNCTIONS_WEST: edit})
    name = "deployed: the discovery parameters of us-west-1 name its key and table"
    assert set(failed) == {name}, failed
    assert expected in failed[name], failed[name]
