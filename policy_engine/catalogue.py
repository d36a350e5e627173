"""A catalogue of IAM action names, per service: what "every action" means when a check asks what
a principal may do.

Generic AWS knowledge, no toolkit in it. The names come from botocore's service models (each API
operation is authorized by the IAM action of the same name), corrected where IAM differs
(``ReEncrypt`` is authorized as ``kms:ReEncryptFrom`` and ``kms:ReEncryptTo``; PartiQL
statements as ``dynamodb:PartiQL*``; DynamoDB Streams and CloudWatch use the ``dynamodb`` and
``cloudwatch`` prefixes), plus permission-only actions that have no API operation. Every
service also gets ``service:*``, and the catalogue ``*``: requests no concrete grant covers, so
a wildcard grant shows as itself even for actions AWS adds later. Complete for DynamoDB and KMS;
for the other services as complete as the installed botocore.
"""

from __future__ import annotations

from functools import cache
from typing import Any

# IAM prefix -> the botocore service models whose operations it authorizes.
MODELS: dict[str, tuple[str, ...]] = {
    "cloudwatch": ("cloudwatch",),
    "dynamodb": ("dynamodb", "dynamodbstreams"),
    "ec2": ("ec2",),
    "iam": ("iam",),
    "kms": ("kms",),
    "lambda": ("lambda",),
    "logs": ("logs",),
    "rds": ("rds",),
    "s3": ("s3",),
    "secretsmanager": ("secretsmanager",),
    "sns": ("sns",),
    "ssm": ("ssm",),
    "sts": ("sts",),
    "xray": ("xray",),
}

# An operation authorized by other action names than its own.
RENAMED: dict[str, tuple[str, ...]] = {
    "kms:ReEncrypt": ("kms:ReEncryptFrom", "kms:ReEncryptTo"),
}

# Permission-only actions (no API operation of that name).
PERMISSION_ONLY: dict[str, tuple[str, ...]] = {
    "dynamodb": (
        "AssociateTableReplica",
        "ConditionCheckItem",
        "CreateTableReplica",
        "DeleteTableReplica",
        "PartiQLDelete",
        "PartiQLInsert",
        "PartiQLSelect",
        "PartiQLUpdate",
        "RestoreTableFromAwsBackup",
        "StartAwsBackupJob",
        "UpdateGlobalTableVersion",
    ),
    "kms": ("SynchronizeMultiRegionKey",),
    "sts": ("SetSourceIdentity", "TagSession"),
}

EVERYTHING = "*"


@cache
def _loader() -> Any:
    import botocore.session

    return botocore.session.get_session().get_component("data_loader")


def _operations(model: str) -> list[str]:
    return list(_loader().load_service_model(model, "service-2")["operations"])


@cache
def service_actions(service: str) -> tuple[str, ...]:
    """Every action of one IAM prefix (``kms``), sorted, ending with ``kms:*``."""
    names: set[str] = {f"{service}:{name}" for name in PERMISSION_ONLY.get(service, ())}
    for model in MODELS[service]:
        for operation in _operations(model):
            action = f"{service}:{operation}"
            names.update(RENAMED.get(action, (action,)))
    return (*sorted(names, key=str.lower), f"{service}:*")


@cache
def catalogue() -> tuple[str, ...]:
    """Every action of every catalogued service, in a fixed order, then ``*``."""
    return (*(a for service in sorted(MODELS) for a in service_actions(service)), EVERYTHING)


def service_of(action: str) -> str:
    """``kms`` for ``kms:Decrypt``; ``*`` for ``*``."""
    return action.split(":", 1)[0].lower() if ":" in action else EVERYTHING
