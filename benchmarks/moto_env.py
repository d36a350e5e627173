"""Two regions on moto, as the stacks create them: an MRK in us-east-2 replicated to us-west-1 and the
records table in both. Every AWS call made through a ``recording_session`` is counted (the
``before-parameter-build`` event fires once per API call), and a KMS latency can be modelled.

Copied from tests/runtime/conftest.py (benchmarks do not import tests)."""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.session

from lambda_src.record_crypto.settings import ENV_MRK_ARN, ENV_REGION, ENV_SENSITIVE_FIELDS, ENV_TABLE_NAME

# record_crypto is imported as the package it is (make setup installs lambda_src/pyproject.toml, editable).
REPO = Path(__file__).resolve().parent.parent
LAMBDA_SRC = REPO / "lambda_src"

PRIMARY, REPLICA = "us-east-2", "us-west-1"
TABLE = "mrk-toolkit-records"
SENSITIVE = ("ssn", "dob", "diagnosis")
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": PRIMARY,
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass
class Recorder:
    """Counts API calls as (service, operation)."""

    calls: Counter[tuple[str, str]] = field(default_factory=Counter)

    def kms(self) -> int:
        return sum(n for (service, _), n in self.calls.items() if service == "kms")

    def kms_by_operation(self) -> dict[str, int]:
        return {op: n for (service, op), n in sorted(self.calls.items()) if service == "kms"}


def recording_session(recorder: Recorder, *, kms_latency_s: float = 0.0) -> botocore.session.Session:
    """A botocore session whose clients count every call; ``kms_latency_s`` is slept before each
    KMS call (a modelled in-region KMS round trip; moto answers in well under a millisecond)."""
    session = botocore.session.get_session()
    create = session.create_client

    def create_client(service_name: str, *args: Any, **kwargs: Any) -> Any:
        client = create(service_name, *args, **kwargs)

        def record(model: Any, **_: Any) -> None:
            recorder.calls[(service_name, model.name)] += 1

        client.meta.events.register("before-parameter-build", record)
        if service_name == "kms" and kms_latency_s > 0:
            client.meta.events.register("before-call", lambda **_: time.sleep(kms_latency_s))
        return client

    session.create_client = create_client  # type: ignore[method-assign]
    return session


@dataclass(frozen=True)
class Keys:
    primary_arn: str
    replica_arn: str

    def arn(self, region: str) -> str:
        return self.primary_arn if region == PRIMARY else self.replica_arn


def create_resources(client_factory: Any) -> Keys:
    """MRK in PRIMARY replicated to REPLICA (moto's replicate_key needs the bare key id) and the table in both."""
    kms = client_factory("kms", PRIMARY)
    key = kms.create_key(MultiRegion=True, Description="records MRK (benchmark)")["KeyMetadata"]
    replica = kms.replicate_key(KeyId=key["KeyId"], ReplicaRegion=REPLICA)["ReplicaKeyMetadata"]
    for region in (PRIMARY, REPLICA):
        client_factory("dynamodb", region).create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    return Keys(primary_arn=key["Arn"], replica_arn=replica["Arn"])


def service_env(keys: Keys, region: str, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The function environment the stacks set (validated by Settings.from_env)."""
    env = {
        ENV_REGION: region,
        ENV_TABLE_NAME: TABLE,
        ENV_MRK_ARN: keys.arn(region),
        ENV_SENSITIVE_FIELDS: ",".join(SENSITIVE),
    }
    env.update(overrides or {})
    return env


@contextlib.contextmanager
def fake_credentials(**extra: str) -> Iterator[None]:
    """Fake credentials (moto accepts any) in os.environ, restored afterwards."""
    values = {**FAKE_CREDENTIALS, **extra}
    saved = {name: os.environ.get(name) for name in [*values, "AWS_PROFILE", "AWS_ENDPOINT_URL"]}
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def in_process_aws() -> Iterator[Keys]:
    """moto's in-process mock (mock_aws), with the MRK decrypt patch applied first."""
    from moto import mock_aws

    from offline.emulator.moto_patches import apply_moto_patches

    apply_moto_patches()
    with fake_credentials(), mock_aws():
        yield create_resources(lambda service, region: boto3.client(service, region_name=region))
