"""Deciding many requests at once, and the catalogue of actions they are built from.

The prefilter of ``decide_all`` must never change a decision: on policies built to trip it
(NotAction, wildcards, a resource policy naming the caller, "*" or only the account, a Deny, a
statement the engine cannot read, a policy variable in an action) every probe gets exactly what
``authorize`` says when asked one by one.
"""

from __future__ import annotations

import itertools
from typing import Any

from policy_engine import Caller, Request, authorize
from policy_engine.catalogue import catalogue, service_actions, service_of
from policy_engine.exhaustive import Probe, decide_all

ACCOUNT = "111122223333"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/app/reader/r1"
KEY = f"arn:aws:kms:us-west-1:{ACCOUNT}:key/mrk-1"
OTHER_KEY = f"arn:aws:kms:us-east-2:{ACCOUNT}:key/mrk-1"
TABLE = f"arn:aws:dynamodb:us-west-1:{ACCOUNT}:table/records"
CTX = {"kms:EncryptionContext:purpose": "record", "kms:CallerAccount": ACCOUNT}

IDENTITY = [
    (
        "access",
        {
            "Statement": [
                {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": KEY, "Condition": {"StringEquals": CTX}},
                {"Effect": "Allow", "Action": "dynamodb:Get*", "Resource": TABLE},
                {"Effect": "Allow", "NotAction": ["kms:*", "dynamodb:*", "iam:*"], "Resource": "*"},
                {"Effect": "Deny", "Action": "sts:AssumeRole", "Resource": "*"},
                {"Effect": "Allow", "Action": "kms:Encrypt", "Resource": KEY, "Unknown": 1},
            ]
        },
    ),
    ("wildcard", {"Statement": [{"Effect": "Allow", "Action": ["kms:GenerateDataKey*"], "Resource": OTHER_KEY}]}),
]
KEY_POLICY = (
    "key policy",
    {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {"Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": "kms:Sign", "Resource": "*"},
            {"Effect": "Allow", "Principal": "*", "Action": "kms:Verify", "Resource": "*"},
            {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:GetPublicKey", "Resource": "*"},
            {"Effect": "Allow", "NotPrincipal": {"AWS": "arn:aws:iam::999999999999:root"}, "Action": "kms:Sign*"},
            {"Effect": "Allow", "Principal": {"Service": "logs.amazonaws.com"}, "Action": "kms:Encrypt*"},
        ]
    },
)


def _probes() -> list[Probe]:
    actions = [*service_actions("kms"), *service_actions("dynamodb"), *service_actions("sts"), "*", "xray:Put"]
    out = []
    for action, resource in itertools.product(actions, (KEY, OTHER_KEY, TABLE, "*")):
        for keys in ({}, CTX):
            kms_key = action.startswith("kms:") and resource != "*"
            out.append(Probe(action, resource, keys, KEY_POLICY if kms_key else None, kms_key))
    return out


def _one_by_one(caller: Caller, probe: Probe) -> Any:
    return authorize(
        Request(caller, probe.action, probe.resource, probe.keys),
        identity_policies=IDENTITY,
        resource_policy=probe.resource_policy,
        resource_policy_required=probe.resource_policy_required,
    )


def test_the_prefilter_never_changes_a_decision() -> None:
    caller = Caller(ACCOUNT, arn=ROLE)
    probes = _probes()
    outcomes = decide_all(caller, IDENTITY, probes)
    assert len(outcomes) == len(probes)
    skipped = 0
    for outcome in outcomes:
        expected = _one_by_one(caller, outcome.probe)
        assert outcome.decision.allowed == expected.allowed, (outcome.probe, outcome.decision, expected)
        if outcome.evaluated:
            assert outcome.decision == expected
        else:
            skipped += 1
    allowed = {(o.probe.action, o.probe.resource) for o in outcomes if o.decision.allowed}
    # Each way in is there: identity (with the context), wildcard, NotAction, the key policy naming
    # the role, "*" and {"AWS": "*"}, NotPrincipal.
    for expected in (
        ("kms:Decrypt", KEY),
        ("dynamodb:GetItem", TABLE),
        ("xray:Put", "*"),
        ("kms:Sign", KEY),
        ("kms:Verify", KEY),
        ("kms:GetPublicKey", OTHER_KEY),
        ("kms:Sign", OTHER_KEY),
    ):
        assert expected in allowed, expected
    assert ("sts:AssumeRole", "*") not in allowed and ("kms:Encrypt", KEY) not in allowed
    assert skipped > len(probes) // 2, "the prefilter should spare most of an exhaustive question"


def test_an_action_the_prefilter_cannot_read_is_never_skipped() -> None:
    """A policy variable, or an Action that is not a string: evaluated, whatever the action."""
    caller = Caller(ACCOUNT, arn=ROLE)
    variable = [("tagged", {"Statement": [{"Effect": "Allow", "Action": "${aws:PrincipalTag/x}", "Resource": "*"}]})]
    (outcome,) = decide_all(caller, variable, [Probe("kms:Decrypt", "*", {"aws:PrincipalTag/x": "kms:Decrypt"})])
    assert outcome.evaluated and outcome.decision.allowed
    odd = [("odd", {"Statement": [{"Effect": "Allow", "Action": ["kms:Decrypt", 7], "Resource": "*"}]})]
    (outcome,) = decide_all(caller, odd, [Probe("kms:Encrypt", "*")])
    assert outcome.evaluated and not outcome.decision.allowed


def test_the_prefilter_spares_nothing_a_root_caller_is_named_for() -> None:
    root = Caller(ACCOUNT, arn=f"arn:aws:iam::{ACCOUNT}:root")
    probe = Probe("kms:ScheduleKeyDeletion", KEY, {}, KEY_POLICY, True)
    (outcome,) = decide_all(root, [], [probe])
    assert outcome.decision.allowed and outcome.evaluated


def test_the_catalogue_is_complete_for_kms_and_dynamodb_and_ordered() -> None:
    import botocore.session

    session = botocore.session.get_session()
    kms = set(service_actions("kms"))
    for operation in session.get_service_model("kms").operation_names:
        if operation == "ReEncrypt":  # authorized as two actions
            assert {"kms:ReEncryptFrom", "kms:ReEncryptTo"} <= kms
        else:
            assert f"kms:{operation}" in kms, operation
    assert {"kms:GenerateDataKeyPair", "kms:GenerateDataKeyPairWithoutPlaintext", "kms:*"} <= kms
    dynamodb = set(service_actions("dynamodb"))
    for model in ("dynamodb", "dynamodbstreams"):
        for operation in session.get_service_model(model).operation_names:
            assert f"dynamodb:{operation}" in dynamodb, operation
    assert {"dynamodb:ConditionCheckItem", "dynamodb:PartiQLSelect", "dynamodb:GetRecords", "dynamodb:*"} <= dynamodb
    every = catalogue()
    assert every == catalogue() and every[-1] == "*" and len(set(every)) == len(every)
    services = [service_of(a) for a in every[:-1]]
    assert services == sorted(services), "grouped by service, in a fixed order"
    for service in ("logs", "sns", "cloudwatch", "sts", "secretsmanager", "rds", "xray"):
        assert f"{service}:*" in every and len(service_actions(service)) > 2, service
    assert "cloudwatch:PutMetricData" in every and "logs:PutLogEvents" in every and "sts:TagSession" in every
