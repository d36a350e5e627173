"""Use the toolkit's record encryption from your own Python code, outside Lambda.

    pip install ./lambda_src    # the record_crypto package (mrk-record-crypto), once
    python examples/records_from_python.py --region us-east-2 --deployment MrkToolkit
    python examples/records_from_python.py \
        --region us-east-2 --table mrk-toolkit-records \
        --key-arn arn:aws:kms:us-east-2:111122223333:key/mrk-...

With ``--deployment`` (the stack prefix) it discovers the key, table and record options from the
deployment's SSM parameters under ``/<deployment>/<region>`` (README "Discovery"); otherwise it takes
them from ``--table`` and ``--key-arn``.

It writes one record, reads it back authenticated, and shows optimistic locking. The
credentials it runs with need what the writer and reader roles have: the key policies grant
``kms:GenerateDataKey`` to roles under ``/<stackPrefix>/writer/`` and ``kms:Decrypt`` to roles
under ``/<stackPrefix>/reader/`` (with the toolkit's encryption context), so run it under such
roles (two services, one per role, in a real application).
"""

from __future__ import annotations

import argparse
import sys

from record_crypto import RecordError, RecordService, Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--region", required=True)
    parser.add_argument("--deployment", help="the deployment's name (its stack prefix): discover the rest")
    parser.add_argument("--table", help="the table (without --deployment)")
    parser.add_argument("--key-arn", help="the multi-region key's ARN in --region (without --deployment)")
    args = parser.parse_args(argv)
    if (args.deployment is None) == (args.table is None or args.key_arn is None) or (
        args.deployment is not None and (args.table or args.key_arn)
    ):
        parser.error("give --deployment, or --table and --key-arn")

    # Credentials from the default chain.
    if args.deployment is not None:
        records = RecordService.discover(region=args.region, deployment=args.deployment)
    else:
        settings = Settings.create(
            table_name=args.table,
            mrk_arn=args.key_arn,
            region=args.region,
            sensitive_fields=("ssn", "date_of_birth", "card_number"),
        )
        records = RecordService(settings)

    written = records.put("example-1", {"name": "Ada", "country": "NZ", "ssn": "078-05-1120"})
    print(f"stored example-1 version {written.version}, encrypted {written.encrypted_fields}")

    read = records.get("example-1", min_version=written.version)
    print(f"read example-1 version {read.version}: name={read.record['name']}, ssn decrypted")

    try:
        records.put("example-1", {"name": "Ada L."}, expected_version=written.version - 1)
    except RecordError as error:  # VersionConflict: someone else's version is current
        print(f"refused: {error.type} ({error.status}): {error.message}")
    updated = records.put("example-1", {"name": "Ada L."}, expected_version=written.version)
    print(f"updated example-1 to version {updated.version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
