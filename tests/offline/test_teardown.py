"""The teardown order and the printed commands (offline/runbooks/teardown.py), and the one-line refusals of
`python -m offline deploy` and `destroy`."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud_assembly.reader import load_assembly
from offline.__main__ import main
from offline.runbooks.teardown import CliCommand, deletion_waves


def test_destroy_deletes_in_the_reverse_of_the_deploy_graph(default_assembly: Path) -> None:
    """The stack order destroy uses (no synth needed) is the synthesized graph's, reversed."""
    deploy = [sorted((s.name, s.region) for s in wave) for wave in load_assembly(default_assembly).waves()]
    destroy = [sorted(wave) for wave in deletion_waves("MrkToolkit", "us-east-2", ["us-west-1"])]
    assert destroy == list(reversed(deploy))


def test_a_former_region_is_deleted_functions_first() -> None:
    assert deletion_waves("P", "us-east-2", ["us-west-1"], only_region="eu-west-1") == [
        [("P-Functions-eu-west-1", "eu-west-1")],
        [("P-Keys-eu-west-1", "eu-west-1")],
    ]


@pytest.mark.parametrize(
    "command",
    [
        CliCommand("dynamodb", "UpdateTable", "us-west-1", (("TableName", "t"), ("DeletionProtectionEnabled", False))),
        CliCommand("kms", "ScheduleKeyDeletion", "eu-west-1", (("KeyId", "mrk-1"), ("PendingWindowInDays", 7))),
        CliCommand("logs", "DeleteLogGroup", "us-east-2", (("logGroupName", "/aws/lambda/a b"),)),
    ],
)
def test_a_printed_command_is_the_call_it_stands_for(command: CliCommand) -> None:
    assert CliCommand.parse(command.render()) == command


def test_the_printed_commands_read_as_the_aws_cli_writes_them() -> None:
    command = CliCommand(
        "dynamodb", "UpdateTable", "us-west-1", (("TableName", "t"), ("DeletionProtectionEnabled", False))
    )
    assert (
        command.render()
        == "aws dynamodb update-table --region us-west-1 --table-name t --no-deletion-protection-enabled"
    )
    with pytest.raises(KeyError):
        CliCommand.parse("aws dynamodb update-table --region us-west-1 --table t")


def test_destroy_refuses_a_region_still_deployed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["destroy", "--region", "us-west-1", "--yes"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--region us-west-1 is still in the deployment" in err[0], err
    assert main(["destroy", "--region", "us-east-2", "--yes"]) == 2
    assert "still in the deployment (primary us-east-2" in capsys.readouterr().err


def test_destroy_refuses_an_unknown_region(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["destroy", "--region", "eu-nowhere-1"]) == 2
    assert "not a known AWS region" in capsys.readouterr().err


def test_deploy_needs_the_emulator(
    default_assembly: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert main(["deploy", "--cdk-out", str(default_assembly)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "export the lines it prints" in err[0] and "npx cdk deploy --all" in err[0], err
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "EMULATORADMIN123456789012")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "emulator-admin")
    assert main(["deploy", "--cdk-out", str(default_assembly)]) == 2
    assert "is `python -m offline up` running?" in capsys.readouterr().err


def test_with_tenants_the_tenant_keys_stacks_go_last() -> None:
    """The tenant keys' stacks hold the tenant keys' primaries; the keys stacks (their replicas) depend on them."""
    from stacks.synthesize import synthesize
    from tests.offline.test_tenants_end_to_end import CONTEXT

    assembly = load_assembly(synthesize(dict(CONTEXT)))
    deploy = [sorted((s.name, s.region) for s in wave) for wave in assembly.waves()]
    destroy = [sorted(w) for w in deletion_waves("MrkToolkit", "us-east-2", ["us-west-1", "eu-west-1"], tenants=True)]
    assert destroy == list(reversed(deploy))
