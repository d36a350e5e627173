"""EMULATION of STS AssumeRole (and GetCallerIdentity for its sessions), answered by the gateway.

AWS decides ``sts:AssumeRole`` with the role's trust policy as a resource policy that must
allow, even for a caller of the role's own account: a trust policy naming the caller (or ``*``)
allows it; one naming the account (its root ARN or id) delegates to IAM, so the caller's
identity policies must allow ``sts:AssumeRole`` too; one naming only ``lambda.amazonaws.com``
lets only Lambda assume the role, whatever the caller's identity policies say. An explicit Deny
in either wins. ``policy_engine.authorize`` decides it (``resource_policy_required``, as for KMS
key policies). A role that does not exist is refused the same way (AWS does not tell which).
The account's root user may not assume any role, whatever the trust policy says: AWS answers
``AccessDenied`` "Roles may not be assumed by root accounts." (``ROOT_REFUSED``) before anything else;
an IAM user with AdministratorAccess (what ``python -m offline up`` exports) may.

Session tags (``Tags``, or transitive tags a chained session carries) need ``sts:TagSession``
allowed the same way, with ``aws:RequestTag/*``, ``aws:TagKeys`` and the role's tags as
``aws:ResourceTag/*``. The issued credentials are registered with the gateway: requests signed
with them act as the role session ``arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`` (the role's
policies decide), with principal tags ``aws:PrincipalTag/*``: the role's IAM tags, overridden by
the session tags; a chained session keeps the caller's transitive tags.

Refused, not emulated (fail closed): another account's role, session policies (``Policy``,
``PolicyArns``), ``SourceIdentity``, MFA (``SerialNumber``/``TokenCode``), ``ProvidedContexts``.
The issued credentials do not expire (``DurationSeconds`` only sets the reported Expiration).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote
from xml.sax.saxutils import escape

from policy_engine import Request, authorize

NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
ROOT_REFUSED = "Roles may not be assumed by root accounts."  # AWS's words (403 AccessDenied)
NOT_EMULATED = ("Policy", "PolicyArns.member.", "SourceIdentity", "SerialNumber", "TokenCode", "ProvidedContexts.")
_TAG = re.compile(r"^Tags\.member\.(\d+)\.Key$")
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
Response = tuple[str, list[tuple[str, str]], bytes]


class StsError(Exception):
    def __init__(self, status: str, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def handle(gateway: Any, identity: Any, environ: dict[str, Any], body: bytes) -> Response | None:
    """The answer to an STS request the emulator decides itself, or None (the gateway's usual path)."""
    raw = body.decode() if environ.get("REQUEST_METHOD") == "POST" else environ.get("QUERY_STRING", "")
    form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
    try:
        if form.get("Action") == "AssumeRole":
            return _assume_role(gateway, identity, form)
        if form.get("Action") == "GetCallerIdentity" and (identity.session_arn or identity.root):
            # The root user is its account: UserId is the account id, as AWS answers it.
            arn = identity.session_arn or identity.arn
            user_id = identity.account if identity.root else arn.rsplit("/", 1)[-1]
            result = f"<Arn>{escape(arn)}</Arn><UserId>{escape(user_id)}</UserId><Account>{identity.account}</Account>"
            return _xml("GetCallerIdentity", result)
    except StsError as exc:
        return _error(exc)
    return None


def _assume_role(gateway: Any, identity: Any, form: dict[str, str]) -> Response:
    if identity.root:
        raise StsError("403 Forbidden", "AccessDenied", ROOT_REFUSED)
    role_arn, session = form.get("RoleArn", ""), form.get("RoleSessionName", "")
    duration, tags, transitive = _validated_request(form, session)
    inherited = dict(identity.tags) if not identity.admin else {}
    carried = {k.lower() for k in identity.transitive}
    clash = sorted(k for k in tags if k.lower() in carried and tags[k] != _get(inherited, k))
    if clash:
        raise StsError(
            "400 Bad Request", "InvalidParameterValue", f"transitive session tags cannot be changed: {clash}"
        )
    role = gateway.state.role(identity.account, role_arn)
    context = _request_context(identity, role, form, session, tags, transitive)
    # Tags passed, or transitive tags carried into a chained session: sts:TagSession too.
    for action in ["sts:AssumeRole", *(["sts:TagSession"] if tags or carried else [])]:
        _authorize_assume(gateway, identity, role_arn, role, action, context)

    principal_tags = {t["Key"].lower(): (t["Key"], t["Value"]) for t in role.tags or []}
    for key, value in [*((k, v) for k, v in inherited.items() if k.lower() in carried), *tags.items()]:
        principal_tags[key.lower()] = (key, value)  # tag keys are case-insensitive: the session's wins
    session_arn = f"arn:aws:sts::{identity.account}:assumed-role/{role.name}/{session}"
    creds = gateway.issue(
        replace(
            identity,
            arn=role_arn,
            admin=False,
            session_arn=session_arn,
            tags=tuple(sorted(principal_tags.values())),
            transitive=frozenset(carried | {k.lower() for k in transitive}),
        )
    )
    expires = datetime.now(UTC) + timedelta(seconds=int(duration))
    result = (
        "<Credentials>"
        f"<AccessKeyId>{creds['AccessKeyId']}</AccessKeyId><SecretAccessKey>{creds['SecretAccessKey']}</SecretAccessKey>"
        f"<SessionToken>{creds['SessionToken']}</SessionToken>"
        f"<Expiration>{expires.strftime('%Y-%m-%dT%H:%M:%SZ')}</Expiration></Credentials>"
        f"<AssumedRoleUser><AssumedRoleId>{escape(role.id)}:{escape(session)}</AssumedRoleId>"
        f"<Arn>{escape(session_arn)}</Arn></AssumedRoleUser>"
    )
    return _xml("AssumeRole", result)


def _validated_request(form: dict[str, str], session: str) -> tuple[str, dict[str, str], list[str]]:
    """The duration, session tags and transitive tag keys asked for; what is not emulated is refused."""
    refused = [p.rstrip(".") for p in NOT_EMULATED if any(k == p or (p[-1] == "." and k.startswith(p)) for k in form)]
    if refused:
        raise StsError("403 Forbidden", "AccessDenied", f"emulated STS: {', '.join(refused)} not emulated (refused)")
    if not _SESSION_NAME.fullmatch(session):
        raise StsError("400 Bad Request", "ValidationError", f"RoleSessionName {session!r}: 2 to 64 of [\\w+=,.@-]")
    duration = form.get("DurationSeconds") or "3600"
    if not duration.isdigit():
        raise StsError("400 Bad Request", "ValidationError", f"DurationSeconds {duration!r}")
    transitive = [v for k, v in sorted(form.items()) if k.startswith("TransitiveTagKeys.member.")]
    return duration, _tags(form), transitive


def _request_context(
    identity: Any, role: Any, form: dict[str, str], session: str, tags: dict[str, str], transitive: list[str]
) -> dict[str, Any]:
    """The condition keys an AssumeRole request carries (the trust policy and the caller's policies read them)."""
    context: dict[str, Any] = {"sts:RoleSessionName": session}
    if role is not None:
        context.update({f"aws:ResourceTag/{t['Key']}": t["Value"] for t in role.tags or []})
    if form.get("ExternalId"):
        context["sts:ExternalId"] = form["ExternalId"]
    if tags:
        context.update({f"aws:RequestTag/{k}": v for k, v in tags.items()})
        context["aws:TagKeys"] = sorted(tags)
    if transitive:
        context["sts:TransitiveTagKeys"] = transitive
    context.update(identity.principal_tags())
    return context


def _authorize_assume(
    gateway: Any, identity: Any, role_arn: str, role: Any, action: str, context: dict[str, Any]
) -> None:
    """The role's trust policy is a resource policy that must allow; an account's callers need their
    identity policy too (the engine decides both)."""
    if role_arn.split(":")[4:5] != [identity.account]:
        reason = "cross-account AssumeRole is not emulated"
    elif role is None:
        reason = f"no role {role_arn} in account {identity.account}"
    else:
        decision = authorize(
            Request(identity.caller, action, role_arn, context),
            identity_policies=gateway.identity_policies(identity),
            resource_policy=(f"trust policy of {role_arn}", _document(role.assume_role_policy_document)),
            resource_policy_required=True,
        )
        gateway._record(identity, action, role_arn, decision)
        if decision.allowed:
            return
        reason = decision.reason
    raise StsError(
        "403 Forbidden",
        "AccessDenied",
        f"User: {identity.session_arn or identity.arn} is not authorized to perform: {action} on resource: "
        f"{role_arn} (emulated IAM: {reason})",
    )


def _tags(form: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key in sorted(form, key=lambda k: int(m.group(1)) if (m := _TAG.match(k)) else 0):
        if m := _TAG.match(key):
            out[form[key]] = form.get(f"Tags.member.{m.group(1)}.Value", "")
    return out


def _get(tags: dict[str, str], key: str) -> str | None:
    return next((v for k, v in tags.items() if k.lower() == key.lower()), None)


def _document(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return json.loads(unquote(raw))
    return raw


def _xml(action: str, result: str) -> Response:
    body = (
        f'<{action}Response xmlns="{NAMESPACE}"><{action}Result>{result}</{action}Result>'
        f"<ResponseMetadata><RequestId>emulated-sts</RequestId></ResponseMetadata></{action}Response>"
    )
    return "200 OK", [("Content-Type", "text/xml")], body.encode()


def _error(exc: StsError) -> Response:
    body = (
        f'<ErrorResponse xmlns="{NAMESPACE}"><Error><Type>Sender</Type><Code>{exc.code}</Code>'
        f"<Message>{escape(str(exc))}</Message></Error><RequestId>emulated-sts</RequestId></ErrorResponse>"
    )
    return exc.status, [("Content-Type", "text/xml")], body.encode()
