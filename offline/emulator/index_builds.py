"""DynamoDB's online index creation, emulated. moto makes a global secondary index added by UpdateTable
ACTIVE at once; DynamoDB builds it first (``IndexStatus`` CREATING, ``Backfilling`` true, minutes to
hours on a large table) and refuses every read of it meanwhile with a ValidationException, "Cannot read
from backfilling global secondary index: <name>" (the CloudFormation stack update does not wait for it).
The provisioner starts a build here when a stack update adds an index; the gateway refuses Query and
Scan of an index that is still building, as DynamoDB does; the build ends after ``BUILD_SECONDS``."""

from __future__ import annotations

import threading
from typing import Any

# How long an added index stays CREATING (tests that observe the window set it longer).
BUILD_SECONDS = 3.0
CREATING, ACTIVE = "CREATING", "ACTIVE"


def _index(account: str, region: str, table: str, index: str) -> Any | None:
    from moto.dynamodb.models import dynamodb_backends

    try:
        found = dynamodb_backends[account][region].get_table(table)
    except Exception:
        return None  # moto answers ResourceNotFound itself
    return next((i for i in found.global_indexes if i.name == index), None)


def start(account: str, region: str, table: str, index: str, seconds: float | None = None) -> None:
    """The index (just created, ACTIVE in moto) is CREATING until ``seconds`` (BUILD_SECONDS) have passed."""
    gsi = _index(account, region, table, index)
    if gsi is None:
        return
    gsi.status = CREATING

    def done() -> None:
        gsi.status = ACTIVE

    timer = threading.Timer(BUILD_SECONDS if seconds is None else seconds, done)
    timer.daemon = True
    timer.start()


def building(account: str, region: str, table: str, index: str) -> bool:
    gsi = _index(account, region, table, index)
    return gsi is not None and gsi.status != ACTIVE


def refusal(index: str) -> str:
    """DynamoDB's words (aws/aws-cli#4845 quotes them)."""
    return f"Cannot read from backfilling global secondary index: {index}"
