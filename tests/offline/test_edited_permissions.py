"""The main job on assemblies whose roles may do more than their contracts (issue 19, items 1 and 6).

Each edit below passed the main job before the permission checks: the functions still work, and
the earlier checks asked only named actions of the roles' own key. Now the deployed read-back
(offline/verification/permissions.py) fails it, in a line naming the role, the action, the
resource and the statement that allows it. tests/infra/test_role_contracts.py asks the same of
the templates, without the emulator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.offline.edits import edited, failures, resources, run

pytestmark = pytest.mark.e2e
FUNCTIONS_WEST, FUNCTIONS_EAST = "MrkToolkit-Functions-us-west-1", "MrkToolkit-Functions-us-east-2"
READER_WEST = "deployed: the reader's role in us-west-1 may do exactly its contract"
WRITER_WEST = "deployed: the writer's role in us-west-1 may do exactly its contract"


def _failed(assembly: Path, tmp_path: Path, edits: dict[str, Any]) -> dict[str, str]:
    return failures(run(edited(assembly, tmp_path / "cdk.out", edits), tmp_path))


def _access_policy(template: dict[str, Any], kind: str) -> dict[str, Any]:
    (policy,) = resources(template, "AWS::IAM::ManagedPolicy", f"Records{kind}AccessPolicy")
    return policy["Properties"]["PolicyDocument"]


def _statement(template: dict[str, Any], kind: str, sid: str) -> dict[str, Any]:
    return next(s for s in _access_policy(template, kind)["Statement"] if s["Sid"] == sid)


def test_a_reader_that_may_write_and_delete_items(default_assembly: Path, tmp_path: Path) -> None:
    def writes(template: dict[str, Any]) -> None:
        table = _statement(template, "Reader", "LocalTableReplica")["Resource"]
        statement = {"Sid": "AlsoWrite", "Effect": "Allow", "Action": ["dynamodb:PutItem", "dynamodb:DeleteItem"]}
        _access_policy(template, "Reader")["Statement"].append({**statement, "Resource": table})

    failed = _failed(default_assembly, tmp_path, {FUNCTIONS_WEST: writes})
    assert set(failed) == {READER_WEST}, failed
    line = failed[READER_WEST]
    assert line.startswith("the reader's role in us-west-1 (MrkToolkit-Functions-us-west-1/RecordsReaderRole"), line
    for action in ("dynamodb:DeleteItem", "dynamodb:PutItem"):
        assert f"{action} on MrkToolkit-Table/RecordsTable (arn:aws:dynamodb:us-west-1:123456789012:table/" in line
    assert "allowed by MrkToolkit-Functions-us-west-1-RecordsReaderAccessPolicy3658CB15 AlsoWrite" in line, line


def test_a_reader_whose_decrypt_names_any_key(default_assembly: Path, tmp_path: Path) -> None:
    def any_key(template: dict[str, Any]) -> None:
        _statement(template, "Reader", "LocalMultiRegionKey")["Resource"] = "*"

    failed = _failed(default_assembly, tmp_path, {FUNCTIONS_WEST: any_key})
    assert set(failed) == {READER_WEST}, failed
    line = failed[READER_WEST]
    # The other region's multi-region key first (its key policy lets readers decrypt), with the
    # statement that allows it through the key policy's delegation.
    assert "kms:Decrypt on MrkToolkit-Keys-us-east-2/RecordsKey (arn:aws:kms:us-east-2:123456789012:key/mrk-" in line
    assert "key policy ReadersDecryptWithRecordContext delegates to IAM and " in line, line
    assert "RecordsReaderAccessPolicy3658CB15 LocalMultiRegionKey" in line, line


def test_a_writer_that_may_decrypt(default_assembly: Path, tmp_path: Path) -> None:
    """Decrypt added beside GenerateDataKey, on any key: the key policy of the writer's own key
    still refuses (so the earlier "cannot decrypt" checks pass), but any key that is not the
    toolkit's would decrypt for it."""

    def decrypts(template: dict[str, Any]) -> None:
        own = _statement(template, "Writer", "LocalMultiRegionKey")
        also = {**own, "Sid": "AlsoDecrypt", "Action": "kms:Decrypt", "Resource": "*"}
        _access_policy(template, "Writer")["Statement"].append(also)

    failed = _failed(default_assembly, tmp_path, {FUNCTIONS_WEST: decrypts})
    assert set(failed) == {WRITER_WEST}, failed
    line = failed[WRITER_WEST]
    assert "kms:Decrypt on a key that is not the toolkit's (arn:aws:kms:us-west-1:123456789012:key/00000000-" in line
    assert "(with the toolkit's encryption context), allowed by MrkToolkit-Functions-us-west-1-" in line, line
    assert "RecordsWriterAccessPolicyB1DFA622 AlsoDecrypt" in line, line


def test_a_role_given_every_dynamodb_action(default_assembly: Path, tmp_path: Path) -> None:
    def everything(template: dict[str, Any]) -> None:
        _statement(template, "Writer", "LocalTableReplica")["Action"] = "dynamodb:*"

    failed = _failed(default_assembly, tmp_path, {FUNCTIONS_WEST: everything})
    # Its own code still works; reading every attribute is one of the things it may now do.
    assert set(failed) == {
        WRITER_WEST,
        "deployed: in us-west-1 the writer's role may read the stored version and nothing else",
    }
    line = failed[WRITER_WEST]
    assert "action(s) (dynamodb:*, dynamodb:AssociateTableReplica," in line, line
    assert "): dynamodb:* on MrkToolkit-Table/RecordsTable (arn:aws:dynamodb:us-west-1:" in line, line
    assert "RecordsWriterAccessPolicyB1DFA622 LocalTableReplica" in line and "more)" in line, line


def test_a_role_allowed_another_regions_key(default_assembly: Path, tmp_path: Path) -> None:
    def other_region(template: dict[str, Any]) -> None:
        statement = _statement(template, "Reader", "LocalMultiRegionKey")
        east = {**statement["Resource"]["Fn::GetStackOutput"], "StackName": "MrkToolkit-Keys-us-east-2"}
        statement["Resource"] = [statement["Resource"], {"Fn::GetStackOutput": {**east, "Region": "us-east-2"}}]

    failed = _failed(default_assembly, tmp_path, {FUNCTIONS_WEST: other_region})
    assert set(failed) == {READER_WEST}, failed
    line = failed[READER_WEST]
    assert "may do 1 request(s) beyond its contract, 1 action(s) (kms:Decrypt): kms:Decrypt on " in line, line
    assert "MrkToolkit-Keys-us-east-2/RecordsKey (arn:aws:kms:us-east-2:123456789012:key/mrk-" in line, line
    assert "(with the toolkit's encryption context), allowed by key policy ReadersDecryptWithRecordContext" in line
