"""Tenants (README "Tenants"): what a tenant's session costs a request, measured in one run under moto.

``python -m benchmarks.tenants [--records N]`` prints the figures as markdown (benchmarks/TENANTS.md
holds a run and the design note). Three paths of the writer, interleaved, on fresh ids:

* ``single-key``: the deployment without tenants (the records key, the function's own credentials);
* ``tenant, session cached``: a tenant's record under that tenant's session of the tenant-access role
  (STS AssumeRole with the session tag, taken once and reused, as a warm function does);
* ``tenant, session taken``: the same in a warm container, with the tenant's session taken for this
  request (the tenant's first request in the container, or the renewal every 55 minutes): one STS
  call, a new botocore session and its STS and KMS clients.

moto answers STS and KMS in about a millisecond; real STS takes tens of milliseconds, so the miss
matters in production only once per tenant, container and 55 minutes (see the design note).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import uuid
from typing import Any

import boto3
import botocore.session

from benchmarks.moto_env import PRIMARY, in_process_aws, service_env  # puts lambda_src on sys.path
from lambda_src.record_crypto.service import RecordService
from lambda_src.record_crypto.settings import (
    ENV_TENANT_KEYS,
    ENV_TENANT_ROLE_ARN,
    TENANT_KEY,
    Settings,
    tenant_keys_environment,
)

ROLE_ARN = "arn:aws:iam::123456789012:role/MrkToolkit/writer/tenant-access"
CACHED_OVERHEAD_TARGET = 0.05


def _record(i: int) -> dict[str, Any]:
    return {"name": f"Ada {i}", "country": "NZ", "ssn": f"078-05-{i:04d}", "dob": "1815-12-10", "diagnosis": "x"}


def _services(keys: Any) -> dict[str, Any]:
    kms = boto3.client("kms", region_name=PRIMARY)
    tenant_key = kms.create_key(MultiRegion=True, Tags=[{"TagKey": TENANT_KEY, "TagValue": "acme"}])["KeyMetadata"]
    tenant_env = {
        ENV_TENANT_KEYS: tenant_keys_environment({"acme": tenant_key["KeyId"]}),
        ENV_TENANT_ROLE_ARN: ROLE_ARN,
    }
    single = RecordService(
        Settings.from_env(service_env(keys, PRIMARY)), botocore_session=botocore.session.get_session()
    )
    tenant_settings = Settings.from_env(service_env(keys, PRIMARY, tenant_env))
    cached = RecordService(tenant_settings, botocore_session=botocore.session.get_session())

    missing = RecordService(tenant_settings, botocore_session=botocore.session.get_session())

    def fresh() -> RecordService:
        missing._tenant_ciphers.clear()  # the tenant's session is taken again (first request, or renewal)
        return missing

    return {"single": single, "cached": cached, "fresh": fresh}


def measure(records: int) -> dict[str, float]:
    """Median ms per write of each path (interleaved, after a warm-up of each)."""
    with in_process_aws() as keys:
        services = _services(keys)
        runs: dict[str, list[float]] = {"single-key": [], "tenant, session cached": [], "tenant, session taken": []}

        def write(path: str, i: int) -> None:
            event: dict[str, Any] = {"id": f"b-{uuid.uuid4().hex}", "record": _record(i)}
            if path == "single-key":
                service = services["single"]
            else:
                event[TENANT_KEY] = "acme"
                service = services["cached"] if path == "tenant, session cached" else services["fresh"]()
            started = time.perf_counter()
            result = service.write(event)
            runs[path].append((time.perf_counter() - started) * 1000)
            assert result["ok"], result

        for path in runs:  # warm-up: clients, the cached session
            write(path, 0)
            runs[path].clear()
        gc.disable()
        try:
            for i in range(records):
                for path in runs:
                    write(path, i)
        finally:
            gc.enable()
        return {path: statistics.median(values) for path, values in runs.items()}


def render(ms: dict[str, float], records: int) -> str:
    base = ms["single-key"]
    lines = [
        f"`python -m benchmarks.tenants --records {records}` (moto in-process, signing suite, data-key cache off; "
        "median of interleaved writes)",
        "",
        "| path | ms per write | vs single-key |",
        "|---|---|---|",
    ]
    lines += [f"| {path} | {value:.2f} | {value / base:.3f}x |" for path, value in ms.items()]
    cached = ms["tenant, session cached"] / base - 1
    verdict = "meets" if cached <= CACHED_OVERHEAD_TARGET else "misses"
    lines += ["", f"Cached tenant session: {cached:+.1%} per write ({verdict} the 5% goal)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tenants", description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=200)
    args = parser.parse_args(argv)
    print(render(measure(args.records), args.records))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
