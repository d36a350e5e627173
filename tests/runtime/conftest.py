"""Two regions on moto (in-process): a multi-region key replicated to the second region and the
table in both, as the stacks create them. Replication is done by copying, as Global Tables
would. Every AWS call the functions make is recorded (service, operation, region, key)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws
from record_crypto.service import RecordService
from record_crypto.settings import Settings

from offline.emulator.moto_patches import apply_moto_patches

PRIMARY, REPLICA = "us-east-2", "us-west-1"
TABLE = "mrk-toolkit-records"
SENSITIVE = ("ssn", "dob", "diagnosis")


@dataclass
class Call:
    service: str
    operation: str
    region: str
    key_id: str | None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Recorder:
    calls: list[Call] = field(default_factory=list)

    def kms(self, operation: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.service == "kms" and (operation is None or c.operation == operation)]

    def table(self, operation: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.service == "dynamodb" and (operation is None or c.operation == operation)]

    def clear(self) -> None:
        self.calls.clear()


def recording_session(recorder: Recorder, faults: dict[str, list[str]] | None = None) -> botocore.session.Session:
    """A botocore session whose clients record every call; ``faults`` maps "kms.Decrypt" to a
    list of error codes returned (one per attempt, in order) instead of calling the service."""
    session = botocore.session.get_session()
    create = session.create_client

    def create_client(service_name: str, *args: Any, **kwargs: Any) -> Any:
        client = create(service_name, *args, **kwargs)
        region = client.meta.region_name

        def record(model: Any, params: dict[str, Any], **_: Any) -> None:
            recorder.calls.append(Call(service_name, model.name, region, params.get("KeyId"), dict(params)))

        def inject(request: Any, operation_name: str = "", **_: Any) -> AWSResponse | None:
            queue = (faults or {}).get(f"{service_name}.{operation_name}")
            if queue:
                return _error_response(request.url, queue.pop(0))
            return None

        client.meta.events.register("before-parameter-build", record)
        # First, so it answers before moto's own before-send stub does.
        client.meta.events.register_first(
            "before-send", lambda request, **kw: inject(request, kw.get("event_name", "").split(".")[-1])
        )
        return client

    session.create_client = create_client  # type: ignore[method-assign]
    return session


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def _error_response(url: str, code: str) -> AWSResponse:
    body = json.dumps({"__type": code, "message": f"injected {code}"}).encode()
    headers = {"x-amzn-RequestId": "injected", "Content-Type": "application/x-amz-json-1.1"}
    return AWSResponse(url, 400, headers, _Raw(body))


@dataclass
class TwoRegions:
    primary_arn: str
    replica_arn: str
    recorder: Recorder
    _services: dict[str, RecordService] = field(default_factory=dict)

    def shared_service(self, region: str) -> RecordService:
        """One service per region for the whole test (a warm function), default settings."""
        if region not in self._services:
            self._services[region] = self.service(region)
        return self._services[region]

    def env(self, region: str, **overrides: str) -> dict[str, str]:
        env = {
            "AWS_REGION": region,
            "RECORDS_TABLE_NAME": TABLE,
            "RECORDS_MRK_ARN": self.primary_arn if region == PRIMARY else self.replica_arn,
            "SENSITIVE_FIELDS": ",".join(SENSITIVE),
        }
        env.update(overrides)
        return env

    def service(self, region: str, *, faults: dict[str, list[str]] | None = None, **overrides: str) -> RecordService:
        settings = Settings.from_env(self.env(region, **overrides))
        return RecordService(settings, botocore_session=recording_session(self.recorder, faults))

    def raw_item(self, region: str, item_id: str) -> dict[str, Any] | None:
        return boto3.client("dynamodb", region).get_item(TableName=TABLE, Key={"id": {"S": item_id}}).get("Item")

    def put_raw_item(self, region: str, item: dict[str, Any]) -> None:
        boto3.client("dynamodb", region).put_item(TableName=TABLE, Item=item)

    def written(
        self, item_id: str = "person-1", record: dict[str, Any] | None = None, **env: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Write ``record`` (default: ``sample_record(item_id)``) in the primary region with a
        writer of these settings, replicate it; (the record, the item as stored in the replica)."""
        record = record or sample_record(item_id)
        result = self.service(PRIMARY, **env).write({"id": item_id, "record": record})
        assert result["ok"], result
        self.replicate(item_id)
        item = self.raw_item(REPLICA, item_id)
        assert item is not None
        return record, item

    def replicate(self, item_id: str, source: str = PRIMARY, target: str = REPLICA) -> None:
        """Copy an item as Global Tables replication would."""
        item = self.raw_item(source, item_id)
        assert item is not None, f"{item_id} not in {source}"
        self.put_raw_item(target, item)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[TwoRegions]:
    apply_moto_patches()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": PRIMARY,
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        kms = boto3.client("kms", PRIMARY)
        key = kms.create_key(MultiRegion=True, Description="records MRK")["KeyMetadata"]
        replica = kms.replicate_key(KeyId=key["KeyId"], ReplicaRegion=REPLICA)["ReplicaKeyMetadata"]
        for region in (PRIMARY, REPLICA):
            boto3.client("dynamodb", region).create_table(
                TableName=TABLE,
                KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        yield TwoRegions(primary_arn=key["Arn"], replica_arn=replica["Arn"], recorder=Recorder())


def sample_record(tag: str = "a") -> dict[str, Any]:
    return {
        "name": f"Ada {tag}",
        "country": "NZ",
        "tier": 3,
        "score": 1.25,
        "tags": ["x", "y"],
        "ssn": f"SECRET-ssn-{tag}-078-05-1120",
        "dob": f"SECRET-dob-{tag}-1815-12-10",
        "diagnosis": {"code": f"SECRET-dx-{tag}", "notes": ["SECRET-note"]},
    }


def secrets_of(record: dict[str, Any]) -> list[str]:
    """The sensitive values of a record, as strings that must never appear at rest or in logs."""
    out: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str) and len(value) >= 6:
            out.append(value)

    for name in SENSITIVE:
        if name in record:
            walk(record[name])
    return out


def assert_no_plaintext(blob: Any, record: dict[str, Any]) -> None:
    text = blob if isinstance(blob, str) else json.dumps(blob, default=repr)
    leaked = [s for s in secrets_of(record) if s in text]
    assert not leaked, f"plaintext leaked: {leaked}"


Writer = Callable[..., dict[str, Any]]


def race_once(slow: RecordService, other_write: Callable[[], dict[str, Any]]) -> list[dict[str, Any]]:
    """Make ``other_write`` land once between ``slow``'s version read and its write (another
    writer racing it); the list receives that write's result."""
    read_version = slow._current_version
    raced: list[dict[str, Any]] = []

    def version_then_race(item_id: str) -> int:
        current = read_version(item_id)
        if not raced:
            raced.append(other_write())
        return current

    slow._current_version = version_then_race  # type: ignore[method-assign]
    return raced


# The PostgreSQL fixtures (real servers, one pair per module that asks): tests/runtime/pg.py.
from tests.runtime.pg import cluster, pg  # noqa: E402, F401
