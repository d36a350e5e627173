"""Use the toolkit's record encryption from your own Python code, outside Lambda.

    pip install ./lambda_src    # the record_crypto package (mrk-record-crypto), once
    python examples/records_from_python.py \
        --region us-east-2 --table mrk-toolkit-records \
        --key-arn arn:aws:kms:us-east-2:111122223333:key/mrk-...

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
    parser.add_argument("--table", required=True)
    parser.add_argument("--key-arn", required=True, help="the multi-region key's ARN in --region")
    args = parser.parse_args(argv)

    settings = Settings.create(
        table_name=args.table,
        mrk_arn=args.key_arn,
        region=args.region,
        sensitive_fields=("ssn", "date_of_birth", "card_number"),
    )
    records = RecordService(settings)  # credentials from the default chain

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
