"""One table per condition operator, cases from AWS's documented examples.

Source: IAM User Guide, "IAM JSON policy elements: Condition operators" and "Single-valued vs.
multivalued context keys" (the policy snippets and request values shown there). Each case:
(operator, condition key, policy values, request context, expected outcome).
"""

from __future__ import annotations

from typing import Any

import pytest

from policy_engine import MATCH, NO_MATCH, UNKNOWN, evaluate_operator

Case = tuple[str, str, Any, dict[str, Any], str]


def run(cases: list[Case]) -> None:
    for op, key, values, context, expected in cases:
        lowered = {k.lower(): v for k, v in context.items()}
        assert evaluate_operator(op, key, values, lowered) == expected, (op, key, values, context)


JOB = "aws:PrincipalTag/job-category"
STRING_CASES: list[Case] = [
    # StringEquals aws:PrincipalTag/job-category = iamuser-admin
    ("StringEquals", JOB, "iamuser-admin", {JOB: "iamuser-admin"}, MATCH),
    ("StringEquals", JOB, "iamuser-admin", {JOB: "dev-ops"}, NO_MATCH),
    ("StringEquals", JOB, "iamuser-admin", {}, NO_MATCH),  # key absent: false
    ("StringEquals", JOB, "iamuser-admin", {JOB: "IAMUSER-ADMIN"}, NO_MATCH),  # case-sensitive
    ("StringEquals", JOB, ["dev-ops", "iamuser-admin"], {JOB: "iamuser-admin"}, MATCH),  # values ORed
    # StringNotEquals: absent key is true
    ("StringNotEquals", JOB, "iamuser-admin", {JOB: "dev-ops"}, MATCH),
    ("StringNotEquals", JOB, "iamuser-admin", {JOB: "iamuser-admin"}, NO_MATCH),
    ("StringNotEquals", JOB, "iamuser-admin", {}, MATCH),
    ("StringNotEquals", JOB, ["a", "iamuser-admin"], {JOB: "iamuser-admin"}, NO_MATCH),  # matches none
    # StringEqualsIgnoreCase / StringNotEqualsIgnoreCase
    (
        "StringEqualsIgnoreCase",
        "aws:PrincipalTag/department",
        "Finance",
        {"aws:PrincipalTag/department": "FINANCE"},
        MATCH,
    ),
    (
        "StringNotEqualsIgnoreCase",
        "aws:PrincipalTag/department",
        "Finance",
        {"aws:PrincipalTag/department": "finance"},
        NO_MATCH,
    ),
    # StringLike s3:prefix "home/${aws:username}/*" (policy variable)
    (
        "StringLike",
        "s3:prefix",
        ["", "home/", "home/${aws:username}/"],
        {"s3:prefix": "home/", "aws:username": "JohnDoe"},
        MATCH,
    ),
    (
        "StringLike",
        "s3:prefix",
        "home/${aws:username}/*",
        {"s3:prefix": "home/JohnDoe/docs", "aws:username": "JohnDoe"},
        MATCH,
    ),
    (
        "StringLike",
        "s3:prefix",
        "home/${aws:username}/*",
        {"s3:prefix": "home/Ana/docs", "aws:username": "JohnDoe"},
        NO_MATCH,
    ),
    ("StringLike", "s3:prefix", "home/${aws:username}/*", {"s3:prefix": "home/JohnDoe/x"}, UNKNOWN),  # variable missing
    ("StringLike", "s3:prefix", "home/?/x", {"s3:prefix": "home/a/x"}, MATCH),  # ? is one character
    ("StringLike", "s3:prefix", "home/?/x", {"s3:prefix": "home/ab/x"}, NO_MATCH),
    ("StringLike", "s3:prefix", "a${*}b", {"s3:prefix": "a*b"}, MATCH),  # ${*}: a literal *
    ("StringLike", "s3:prefix", "a${*}b", {"s3:prefix": "axxb"}, NO_MATCH),
    ("StringNotLike", "s3:prefix", "home/*", {"s3:prefix": "tmp/x"}, MATCH),
    ("StringNotLike", "s3:prefix", "home/*", {"s3:prefix": "home/x"}, NO_MATCH),
    ("StringNotLike", "s3:prefix", "home/*", {}, MATCH),
]


def test_string_operators() -> None:
    run(STRING_CASES)


def test_condition_keys_are_case_insensitive() -> None:
    run([("StringEquals", "AWS:PRINCIPALTAG/job-category", "iamuser-admin", {JOB: "iamuser-admin"}, MATCH)])


NUMERIC_CASES: list[Case] = [
    # NumericLessThanEquals s3:max-keys 10
    ("NumericLessThanEquals", "s3:max-keys", "10", {"s3:max-keys": "10"}, MATCH),
    ("NumericLessThanEquals", "s3:max-keys", "10", {"s3:max-keys": "11"}, NO_MATCH),
    ("NumericLessThanEquals", "s3:max-keys", "10", {}, NO_MATCH),
    ("NumericLessThan", "s3:max-keys", "10", {"s3:max-keys": "10"}, NO_MATCH),
    ("NumericGreaterThan", "s3:max-keys", "10", {"s3:max-keys": "10.5"}, MATCH),
    ("NumericGreaterThanEquals", "s3:max-keys", "10", {"s3:max-keys": 10}, MATCH),
    ("NumericEquals", "s3:max-keys", "10", {"s3:max-keys": "10.0"}, MATCH),
    ("NumericNotEquals", "s3:max-keys", "10", {"s3:max-keys": "9"}, MATCH),
    ("NumericNotEquals", "s3:max-keys", "10", {}, MATCH),
    ("NumericEquals", "s3:max-keys", "ten", {"s3:max-keys": "10"}, UNKNOWN),  # unreadable policy value
    ("NumericEquals", "s3:max-keys", "10", {"s3:max-keys": "ten"}, NO_MATCH),
]


def test_numeric_operators() -> None:
    run(NUMERIC_CASES)


TOKEN = "aws:TokenIssueTime"
DATE_CASES: list[Case] = [
    # DateGreaterThan aws:TokenIssueTime 2020-01-01T00:00:01Z
    ("DateGreaterThan", TOKEN, "2020-01-01T00:00:01Z", {TOKEN: "2020-01-02T00:00:00Z"}, MATCH),
    ("DateGreaterThan", TOKEN, "2020-01-01T00:00:01Z", {TOKEN: "2019-12-31T23:59:59Z"}, NO_MATCH),
    ("DateGreaterThan", TOKEN, "2020-01-01T00:00:01Z", {}, NO_MATCH),
    ("DateLessThan", "aws:CurrentTime", "2020-01-01T00:00:00Z", {"aws:CurrentTime": "2019-06-30T00:00:00Z"}, MATCH),
    (
        "DateLessThanEquals",
        "aws:CurrentTime",
        "2020-01-01T00:00:00Z",
        {"aws:CurrentTime": "2020-01-01T00:00:00Z"},
        MATCH,
    ),
    (
        "DateGreaterThanEquals",
        "aws:CurrentTime",
        "1577836800",
        {"aws:CurrentTime": "2020-01-01T00:00:00Z"},
        MATCH,
    ),  # epoch
    ("DateEquals", "aws:CurrentTime", "2020-01-01T00:00:00Z", {"aws:CurrentTime": "2020-01-01T00:00:00+00:00"}, MATCH),
    ("DateNotEquals", "aws:CurrentTime", "2020-01-01T00:00:00Z", {"aws:CurrentTime": "2020-01-02T00:00:00Z"}, MATCH),
    ("DateEquals", "aws:CurrentTime", "not a date", {"aws:CurrentTime": "2020-01-01T00:00:00Z"}, UNKNOWN),
]


def test_date_operators() -> None:
    run(DATE_CASES)


BOOL_CASES: list[Case] = [
    # Bool aws:SecureTransport "true" / "false"
    ("Bool", "aws:SecureTransport", "true", {"aws:SecureTransport": "true"}, MATCH),
    ("Bool", "aws:SecureTransport", "true", {"aws:SecureTransport": True}, MATCH),
    ("Bool", "aws:SecureTransport", "false", {"aws:SecureTransport": "true"}, NO_MATCH),
    ("Bool", "aws:SecureTransport", "false", {}, NO_MATCH),
    ("Bool", "aws:SecureTransport", "maybe", {"aws:SecureTransport": "true"}, UNKNOWN),
]


def test_bool_operator() -> None:
    run(BOOL_CASES)


BINARY_CASES: list[Case] = [
    # BinaryEquals key "QmluYXJ5VmFsdWVJbkJhc2U2NA==" (base64 of "BinaryValueInBase64")
    ("BinaryEquals", "key", "QmluYXJ5VmFsdWVJbkJhc2U2NA==", {"key": b"BinaryValueInBase64"}, MATCH),
    ("BinaryEquals", "key", "QmluYXJ5VmFsdWVJbkJhc2U2NA==", {"key": "QmluYXJ5VmFsdWVJbkJhc2U2NA=="}, MATCH),
    ("BinaryEquals", "key", "QmluYXJ5VmFsdWVJbkJhc2U2NA==", {"key": b"other"}, NO_MATCH),
    ("BinaryEquals", "key", "QmluYXJ5VmFsdWVJbkJhc2U2NA==", {}, NO_MATCH),
    ("BinaryEquals", "key", "%%not base64%%", {"key": b"x"}, UNKNOWN),
]


def test_binary_operator() -> None:
    run(BINARY_CASES)


IP = "aws:SourceIp"
IP_CASES: list[Case] = [
    # IpAddress aws:SourceIp 203.0.113.0/24; IPv6 2001:DB8:1234:5678::/64
    ("IpAddress", IP, "203.0.113.0/24", {IP: "203.0.113.7"}, MATCH),
    ("IpAddress", IP, "203.0.113.0/24", {IP: "198.51.100.1"}, NO_MATCH),
    ("IpAddress", IP, ["203.0.113.0/24", "2001:DB8:1234:5678::/64"], {IP: "2001:db8:1234:5678::1"}, MATCH),
    ("IpAddress", IP, "203.0.113.0/24", {}, NO_MATCH),
    ("NotIpAddress", IP, "203.0.113.0/24", {IP: "198.51.100.1"}, MATCH),
    ("NotIpAddress", IP, "203.0.113.0/24", {IP: "203.0.113.7"}, NO_MATCH),
    ("NotIpAddress", IP, "203.0.113.0/24", {}, MATCH),
    ("IpAddress", IP, "not-a-cidr", {IP: "203.0.113.7"}, UNKNOWN),
]


def test_ip_operators() -> None:
    run(IP_CASES)


SRC = "aws:SourceArn"
TOPIC = "arn:aws:sns:us-east-1:123456789012:TOPIC-ID"
ARN_CASES: list[Case] = [
    # ArnEquals aws:SourceArn arn:aws:sns:REGION:123456789012:TOPIC-ID
    ("ArnEquals", SRC, TOPIC, {SRC: TOPIC}, MATCH),
    ("ArnEquals", SRC, TOPIC, {SRC: TOPIC + "-2"}, NO_MATCH),
    ("ArnLike", SRC, "arn:aws:sns:*:123456789012:*", {SRC: TOPIC}, MATCH),
    ("ArnLike", SRC, "arn:aws:sns:*:123456789012:*", {SRC: "arn:aws:sns:us-east-1:999999999999:T"}, NO_MATCH),
    (
        "ArnLike",
        "aws:PrincipalArn",
        "arn:aws:iam::123456789012:role/app/reader/*",
        {"aws:PrincipalArn": "arn:aws:iam::123456789012:role/app/reader/r1"},
        MATCH,
    ),
    (
        "ArnLike",
        "aws:PrincipalArn",
        "arn:aws:iam::123456789012:role/app/reader/*",
        {"aws:PrincipalArn": "arn:aws:iam::123456789012:role/app/writer/w1"},
        NO_MATCH,
    ),
    ("ArnLike", SRC, "arn:aws:sns:*", {SRC: TOPIC}, NO_MATCH),  # fewer than six parts
    ("ArnNotEquals", SRC, TOPIC, {SRC: TOPIC}, NO_MATCH),
    ("ArnNotLike", SRC, "arn:aws:sns:*:123456789012:*", {SRC: "arn:aws:sns:us-east-1:999999999999:T"}, MATCH),
    ("ArnNotLike", SRC, "arn:aws:sns:*:123456789012:*", {}, MATCH),
    ("ArnLike", SRC, TOPIC, {}, NO_MATCH),
]


def test_arn_operators() -> None:
    run(ARN_CASES)


IF_EXISTS_CASES: list[Case] = [
    # StringLikeIfExists ec2:InstanceType ["t1.*", "t2.*", "m3.*"]: true when the key is absent
    ("StringLikeIfExists", "ec2:InstanceType", ["t1.*", "t2.*", "m3.*"], {}, MATCH),
    ("StringLikeIfExists", "ec2:InstanceType", ["t1.*", "t2.*", "m3.*"], {"ec2:InstanceType": "t2.micro"}, MATCH),
    ("StringLikeIfExists", "ec2:InstanceType", ["t1.*", "t2.*", "m3.*"], {"ec2:InstanceType": "c5.large"}, NO_MATCH),
    ("StringEqualsIfExists", "kms:ViaService", "dynamodb.us-west-1.amazonaws.com", {}, MATCH),
    ("NumericLessThanIfExists", "s3:max-keys", "10", {"s3:max-keys": "20"}, NO_MATCH),
    ("ArnLikeIfExists", SRC, "arn:aws:sns:*:123456789012:*", {}, MATCH),
    ("BoolIfExists", "aws:MultiFactorAuthPresent", "false", {}, MATCH),
]


def test_if_exists_operators() -> None:
    run(IF_EXISTS_CASES)


NULL_CASES: list[Case] = [
    # Null aws:TokenIssueTime "true": temporary credentials absent (long-term keys)
    ("Null", TOKEN, "true", {}, MATCH),
    ("Null", TOKEN, "true", {TOKEN: "2020-01-01T00:00:00Z"}, NO_MATCH),
    ("Null", TOKEN, "false", {TOKEN: "2020-01-01T00:00:00Z"}, MATCH),
    ("Null", TOKEN, "false", {}, NO_MATCH),
    ("Null", "aws:TagKeys", "true", {"aws:TagKeys": []}, MATCH),  # an empty set counts as absent
    ("Null", TOKEN, "sometimes", {}, UNKNOWN),
]


def test_null_operator() -> None:
    run(NULL_CASES)


TAGS = "aws:TagKeys"
SET_CASES: list[Case] = [
    # ForAllValues:StringEquals aws:TagKeys ["environment", "cost-center"]
    ("ForAllValues:StringEquals", TAGS, ["environment", "cost-center"], {TAGS: ["environment"]}, MATCH),
    ("ForAllValues:StringEquals", TAGS, ["environment", "cost-center"], {TAGS: ["environment", "cost-center"]}, MATCH),
    ("ForAllValues:StringEquals", TAGS, ["environment", "cost-center"], {TAGS: ["environment", "dept"]}, NO_MATCH),
    ("ForAllValues:StringEquals", TAGS, ["environment", "cost-center"], {}, MATCH),  # absent: true
    ("ForAllValues:StringEquals", TAGS, ["environment", "cost-center"], {TAGS: []}, MATCH),  # empty: true
    # ForAnyValue:StringEquals aws:TagKeys ["environment", "cost-center"]
    ("ForAnyValue:StringEquals", TAGS, ["environment", "cost-center"], {TAGS: ["environment", "dept"]}, MATCH),
    ("ForAnyValue:StringEquals", TAGS, ["environment", "cost-center"], {TAGS: ["dept"]}, NO_MATCH),
    ("ForAnyValue:StringEquals", TAGS, ["environment", "cost-center"], {}, NO_MATCH),  # absent: false
    # negated set operators: each value / some value matches none of the policy values
    ("ForAllValues:StringNotEquals", TAGS, ["environment"], {TAGS: ["dept", "team"]}, MATCH),
    ("ForAllValues:StringNotEquals", TAGS, ["environment"], {TAGS: ["dept", "environment"]}, NO_MATCH),
    ("ForAnyValue:StringNotEquals", TAGS, ["environment"], {TAGS: ["dept", "environment"]}, MATCH),
    ("ForAnyValue:StringNotEquals", TAGS, ["environment"], {TAGS: ["environment"]}, NO_MATCH),
    ("ForAnyValue:StringLike", TAGS, ["env*"], {TAGS: ["dept", "environment"]}, MATCH),
    ("ForAllValues:StringLike", TAGS, ["env*", "cost-*"], {TAGS: ["environment", "owner"]}, NO_MATCH),
    ("ForAnyValue:ArnLike", "aws:PrincipalServiceNamesList", "*", {"aws:PrincipalServiceNamesList": ["a"]}, NO_MATCH),
    # a multi-valued key without a set operator is not decided
    ("StringEquals", TAGS, "environment", {TAGS: ["environment", "dept"]}, UNKNOWN),
    ("ForSomeValues:StringEquals", TAGS, "environment", {TAGS: ["environment"]}, UNKNOWN),
]


def test_set_operators() -> None:
    run(SET_CASES)


@pytest.mark.parametrize(
    "operator",
    ["StringEqualz", "NumericAround", "NullIfExists", "ForAnyValue:Null", "Foo:StringEquals", "IfExists", ""],
)
def test_unknown_operators_are_unknown(operator: str) -> None:
    assert evaluate_operator(operator, "aws:SourceIp", "x", {"aws:sourceip": "x"}) == UNKNOWN
