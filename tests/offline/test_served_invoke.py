"""The emulated Lambda Invoke answers a payload that is not JSON as Lambda does: a 400
InvalidRequestContentException an ordinary boto3 client raises at once (no retries), naming
where the JSON broke but never the payload's text, and no traceback in the server's log."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from offline.emulator.served import ServedApis
from offline.emulator.server import EmulatedAws

ACCOUNT = "123456789012"
REGION = "us-east-1"
SECRET = "SECRET-ssn-999-99-9999"


class Host:
    """Stands for the functions: records the events the served Invoke hands over."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def invoke(self, region: str, kind: str, event: Any) -> dict[str, Any]:
        self.events.append(event)
        return {"result": {"ok": True, "kind": kind}}


@pytest.fixture
def served() -> Iterator[tuple[Any, Host]]:
    host = Host()
    writer = SimpleNamespace(
        region=REGION, name="Writer", arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:Writer", kind="writer"
    )
    with EmulatedAws(ACCOUNT) as aws:
        aws.gateway.served = ServedApis(SimpleNamespace(functions=[writer]), host, aws.gateway.state)
        client = aws.session.client(
            "lambda", region_name=REGION, endpoint_url=aws.endpoint_url, config=Config(retries={"max_attempts": 5})
        )
        yield client, host


@pytest.mark.parametrize(
    "payload",
    [
        f"ssn={SECRET}".encode(),
        b'{"id": "p1", "record": {"ssn": "' + SECRET.encode() + b'"',
        b'{"id": "\xff' + SECRET.encode() + b'"}',
        b"[" * 100_000,
    ],
    ids=["not JSON", "truncated JSON", "not UTF-8", "nested too deeply"],
)
def test_a_payload_that_is_not_json_is_a_400_invalid_request_content(
    served: tuple[Any, Host], payload: bytes, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    client, host = served
    with caplog.at_level(logging.INFO), pytest.raises(ClientError) as err:
        client.invoke(FunctionName="Writer", Payload=payload)
    response = err.value.response
    assert response["Error"]["Code"] == "InvalidRequestContentException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["ResponseMetadata"]["RetryAttempts"] == 0
    assert response["Error"]["Message"].startswith("Could not parse request body into json: ")
    assert SECRET not in response["Error"]["Message"]
    assert host.events == [], "the function must not run"
    logged = caplog.text + capfd.readouterr().err
    assert "Traceback" not in logged and SECRET not in logged


def test_json_payloads_still_reach_the_function(served: tuple[Any, Host]) -> None:
    client, host = served
    for payload in (json.dumps({"id": "p1"}).encode(), b'"just a string"', b""):
        reply = client.invoke(FunctionName="Writer", Payload=payload)
        assert json.loads(reply["Payload"].read()) == {"ok": True, "kind": "writer"}
    assert host.events == [{"id": "p1"}, "just a string", {}]
