"""One IAM policy engine for every tool that reads the synthesized assembly.

The emulator's authorization (``offline``), the policy review (``review``) and our cdk-nag
rules (``cdk_constructs.nag_rules``) all decide with this package; none of them imports
another for it. It evaluates policies the way AWS documents for one account, and fails
closed on whatever it does not understand (an unknown Allow does not allow, an unknown
Deny denies).
"""

from policy_engine.conditions import (
    MATCH,
    NO_MATCH,
    UNKNOWN,
    as_list,
    evaluate_condition,
    evaluate_operator,
    wildcard_match,
)
from policy_engine.evaluate import (
    Caller,
    Decision,
    Request,
    StatementMatch,
    authorize,
    match_statement,
    sid,
    statements,
)
from policy_engine.roles import role_kind

__all__ = [
    "MATCH",
    "NO_MATCH",
    "UNKNOWN",
    "Caller",
    "Decision",
    "Request",
    "StatementMatch",
    "as_list",
    "authorize",
    "evaluate_condition",
    "evaluate_operator",
    "match_statement",
    "role_kind",
    "sid",
    "statements",
    "wildcard_match",
]
