"""Use the toolkit's record encryption from your own Python code, outside Lambda.

    pip install ./lambda_src    # the record_crypto package (mrk-record-crypto), once
    python examples/records_from_python.py --region us-east-2 --deployment MrkToolkit
    python examples/records_from_python.py --region us-east-2 --read-region us-west-1 --deployment MrkToolkit \
        --writer-role-arn arn:aws:iam::111122223333:role/MrkToolkit/writer/... \
        --reader-role-arn arn:aws:iam::111122223333:role/MrkToolkit/reader/...
    python examples/records_from_python.py \
        --region us-east-2 --table mrk-toolkit-records \
        --key-arn arn:aws:kms:us-east-2:111122223333:key/mrk-...

With ``--deployment`` (the stack prefix) it discovers the key, table and record options from the
deployment's SSM parameters under ``/<deployment>/<region>`` (README "Discovery"); otherwise it takes
them from ``--table`` and ``--key-arn``.

It writes one record in ``--region``, reads it back authenticated in ``--read-region`` (default: the
same region; another region waits for replication), and shows optimistic locking. The credentials need
what the writer and reader roles have: the key policies grant ``kms:GenerateDataKey`` to roles under
``/<stackPrefix>/writer/`` and ``kms:Decrypt`` to roles under ``/<stackPrefix>/reader/`` (with the
toolkit's encryption context). With ``applicationPrincipals`` the deployment has such roles for you
(README "The application roles"): ``--writer-role-arn`` / ``--reader-role-arn`` assume them (stack
outputs ``ApplicationWriterRoleArn`` of the writing region's functions stack, ``ApplicationReaderRoleArn``
of the reading region's) with the credentials of the default chain. With tenants, ``--tenant`` writes and
reads as that tenant: the library assumes the application role's tenant-access role (discovered) per
tenant, with the session tag ``tenant``, and uses that tenant's key only.
"""

from __future__ import annotations

import argparse
import sys
import time

import botocore.session
from record_crypto import ReadResult, RecordError, RecordService, Settings

REPLICATION_WAIT_S = 30.0  # a global table replicates in about a second; a read elsewhere waits this long at most


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--region", required=True, help="where the record is written")
    parser.add_argument("--read-region", help="where it is read back (default: --region)")
    parser.add_argument("--deployment", help="the deployment's name (its stack prefix): discover the rest")
    parser.add_argument("--table", help="the table (without --deployment)")
    parser.add_argument("--key-arn", help="the multi-region key's ARN in --region (without --deployment)")
    parser.add_argument("--writer-role-arn", help="assume this role to write (the application writer role)")
    parser.add_argument("--reader-role-arn", help="assume this role to read (the application reader role)")
    parser.add_argument("--tenant", help="with tenants: write and read as this tenant (its key, its session)")
    args = parser.parse_args(argv)
    if (args.deployment is None) == (args.table is None or args.key_arn is None) or (
        args.deployment is not None and (args.table or args.key_arn)
    ):
        parser.error("give --deployment, or --table and --key-arn")
    read_region = args.read_region or args.region
    if read_region != args.region and args.deployment is None:
        parser.error("--read-region needs --deployment (the key ARN differs per region)")

    try:
        return run(args, read_region)
    except RecordError as error:  # one line, as an application would log it (no plaintext in it)
        print(f"{error.type} ({error.status}): {error.message}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace, read_region: str) -> int:
    writer = service(args, args.region, args.writer_role_arn, "writer")
    reader = (
        service(args, read_region, args.reader_role_arn, "reader")
        if (read_region, args.reader_role_arn) != (args.region, args.writer_role_arn)
        else writer
    )
    tenant = args.tenant

    written = writer.put("example-1", {"name": "Ada", "country": "NZ", "ssn": "078-05-1120"}, tenant=tenant)
    print(f"stored example-1 version {written.version} in {args.region}, encrypted {written.encrypted_fields}")

    read = read_replicated(reader, "example-1", written.version, tenant)
    print(f"read example-1 version {read.version} in {read_region}: name={read.record['name']}, ssn decrypted")

    try:
        writer.put("example-1", {"name": "Ada L."}, expected_version=written.version - 1, tenant=tenant)
    except RecordError as error:  # VersionConflict: someone else's version is current
        print(f"refused: {error.type} ({error.status}): {error.message}")
    updated = writer.put("example-1", {"name": "Ada L."}, expected_version=written.version, tenant=tenant)
    print(f"updated example-1 to version {updated.version}")
    return 0


def service(args: argparse.Namespace, region: str, role_arn: str | None, role: str) -> RecordService:
    """The records of ``region``, under ``role_arn``'s session when given (else the default chain); ``role``
    ("writer" or "reader"): whose tenant-access role a tenant's session is taken in."""
    session = assumed(role_arn, region) if role_arn else None
    if args.deployment is not None:
        return RecordService.discover(
            region=region,
            deployment=args.deployment,
            role="writer" if role == "writer" else "reader",
            botocore_session=session,
        )
    settings = Settings.create(
        table_name=args.table,
        mrk_arn=args.key_arn,
        region=region,
        sensitive_fields=("ssn", "date_of_birth", "card_number"),
    )
    return RecordService(settings, botocore_session=session)


def assumed(role_arn: str, region: str) -> botocore.session.Session:
    """A session of ``role_arn``, assumed with the default chain's credentials (STS of ``region``)."""
    sts = botocore.session.get_session().create_client("sts", region_name=region)
    credentials = sts.assume_role(RoleArn=role_arn, RoleSessionName="records-example")["Credentials"]
    session = botocore.session.Session()
    session.set_credentials(credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials["SessionToken"])
    return session


def read_replicated(records: RecordService, item_id: str, version: int, tenant: str | None = None) -> ReadResult:
    """``get`` with ``min_version``, retried while the record has not replicated (a retryable refusal)."""
    deadline = time.monotonic() + REPLICATION_WAIT_S
    while True:
        try:
            return records.get(item_id, min_version=version, tenant=tenant)
        except RecordError as error:
            if not error.retryable or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
