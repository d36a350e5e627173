"""EMULATION of IAM and of DynamoDB's use of KMS, in front of moto (server side).

moto authorizes nothing that matters here (no condition keys, no key policies), so every
request to the emulated AWS passes through this WSGI layer first:

- the caller is known by its access key id (an account's administrator: its root user, or its IAM
  user with AdministratorAccess; or a role whose temporary credentials the emulator issued); an
  unknown key is refused;
- ``sts:AssumeRole`` is decided with the role's trust policy (offline/emulator/sts.py): the
  credentials it issues act as the role session, with its principal tags; the root user is refused
  (AWS: "Roles may not be assumed by root accounts.");
- the request is served in the caller's account (moto serves several: ``x-moto-account-id``);
- a role's KMS and DynamoDB requests are decided by ``policy_engine`` with the role's identity
  policies and, for KMS, the key policy, both read live from the emulated AWS; any other
  request by a role is refused (not emulated: fail closed);
- every DynamoDB data request in region R (whoever makes it) needs the table replica's SSE key
  to be a key of region R whose key policy lets the caller use it through DynamoDB
  (``kms:ViaService`` = ``dynamodb.R.amazonaws.com``, ``kms:CallerAccount``), as DynamoDB needs
  to decrypt the table key; otherwise the request fails as for an inaccessible key;
- ``kms:UpdatePrimaryRegion`` needs the permission on the current primary (in the request's
  region) AND on the replica being promoted (in ``PrimaryRegion``), as KMS documents;
- a **region outage** (``outages``): every request to a region that is down, or to one of its
  services, fails as an unreachable AWS endpoint does (HTTP 503 ``ServiceUnavailable``), before
  anything is authenticated or served; the emulator's own control path (``/mrk-toolkit/...``,
  the account administrator only) switches outages on and off for ``python -m offline outage``.

Reads moto 5.2.5's in-process backends (pinned in requirements-dev.txt).
"""

from __future__ import annotations

import base64
import io
import json
import re
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from offline.emulator import index_builds, sts
from offline.emulator.cloudtrail import Trail, user_identity
from offline.emulator.iam_gate import NOT_KEY_SCOPED, SSM_READS, request_target, ssm_targets
from policy_engine import Caller, Decision, Request, authorize

CONTROL_PATH = "/mrk-toolkit/outages"
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/")
_TARGETS = {"TrentService": "kms", "DynamoDB_20120810": "dynamodb", "DynamoDBStreams_20120810": "dynamodbstreams"}
# What a role may ask of Secrets Manager (each decided by its policies; anything else is refused), and
# the KMS action Secrets Manager performs with the secret's key on the caller's behalf.
SECRET_OPERATIONS = ("GetSecretValue", "DescribeSecret", "PutSecretValue", "UpdateSecretVersionStage", "RotateSecret")
SECRET_KEY_ACTIONS = {"GetSecretValue": "kms:Decrypt", "PutSecretValue": "kms:GenerateDataKey"}
DATA_OPERATIONS = {
    *("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan"),
    *("BatchGetItem", "BatchWriteItem", "TransactGetItems", "TransactWriteItems"),
}


@dataclass(frozen=True)
class Identity:
    account: str
    arn: str  # a role ARN; for an administrator, the account root or its IAM user's ARN
    # An administrator: the root user (IAM allows it everything) or an IAM user with AdministratorAccess
    # (the engine reads its attached policies); what the emulator does not decide is served to it.
    admin: bool = False
    session_arn: str | None = None  # arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION (emulated STS)
    tags: tuple[tuple[str, str], ...] = ()  # the session's principal tags
    transitive: frozenset[str] = frozenset()  # lower-cased keys of its transitive session tags

    @property
    def caller(self) -> Caller:
        return Caller(account=self.account, arn=self.arn, session_arn=self.session_arn)

    @property
    def root(self) -> bool:
        """The account's root user (IAM allows it everything; STS refuses it roles)."""
        return self.caller.is_root

    def principal_tags(self) -> dict[str, str]:
        return {f"aws:PrincipalTag/{key}": value for key, value in self.tags}


class Denied(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Outages:
    """Which regions (or which services of a region) are down. Thread-safe."""

    def __init__(self) -> None:
        self._down: dict[str, frozenset[str] | None] = {}  # region -> services, None: every service
        self._lock = threading.Lock()

    def start(self, region: str, services: Iterable[str] | None = None) -> None:
        with self._lock:
            self._down[region] = frozenset(services) if services else None

    def end(self, region: str) -> None:
        with self._lock:
            self._down.pop(region, None)

    def refuses(self, region: str, service: str) -> bool:
        with self._lock:
            if region not in self._down:
                return False
            services = self._down[region]
            return services is None or service in services

    def snapshot(self) -> dict[str, list[str] | None]:
        with self._lock:
            return {r: (sorted(s) if s is not None else None) for r, s in sorted(self._down.items())}


class MotoState:
    """What is deployed, read live from moto's backends."""

    def role(self, account: str, role_arn: str) -> Any | None:
        from moto.iam.models import iam_backends

        try:
            return iam_backends[account]["aws"].get_role_by_arn(role_arn)
        except Exception:
            return None

    def role_policies(self, account: str, role_arn: str) -> list[tuple[str, Any]]:
        from moto.iam.models import iam_backends

        return _attached(iam_backends[account]["aws"].get_role_by_arn(role_arn))

    def user_policies(self, account: str, user_arn: str) -> list[tuple[str, Any]]:
        from moto.iam.models import iam_backends

        return _attached(iam_backends[account]["aws"].get_user(user_arn.rsplit("/", 1)[-1]))

    def key(self, account: str, region: str, key_id: str) -> Any | None:
        from moto.kms.models import kms_backends

        backend = kms_backends[account][region]
        try:
            return backend.keys[backend.any_id_to_key_id(key_id)]
        except (KeyError, TypeError, AttributeError):
            return None

    def key_tags(self, account: str, region: str, key_id: str) -> dict[str, str]:
        """A key's tags as condition keys: ``aws:ResourceTag/<key>`` -> value."""
        from moto.kms.models import kms_backends

        backend = kms_backends[account][region]
        tags = backend.list_resource_tags(backend.any_id_to_key_id(key_id)).get("Tags", [])
        return {f"aws:ResourceTag/{t['TagKey']}": t["TagValue"] for t in tags}

    def secret_key(self, account: str, region: str, secret_arn: str) -> tuple[bool, str | None]:
        """(the secret exists, the KMS key that encrypts it: None for the AWS managed key)."""
        from moto.secretsmanager.models import secretsmanager_backends

        secret = secretsmanager_backends[account][region].secrets.get(secret_arn)
        if secret is None:
            return False, None
        key = getattr(secret, "kms_key_id", None)
        return True, (None if not key or str(key).startswith("alias/aws/") else str(key))

    def rotation_function(self, account: str, region: str, secret_arn: str) -> str:
        """The rotation function a secret names ("" when none, or no such secret)."""
        from moto.secretsmanager.models import secretsmanager_backends

        secret = secretsmanager_backends[account][region].secrets.get(secret_arn)
        return str(getattr(secret, "rotation_lambda_arn", "") or "") if secret is not None else ""

    def table_sse_key(self, account: str, region: str, table: str) -> str | None:
        from moto.dynamodb.models import dynamodb_backends

        try:
            found = dynamodb_backends[account][region].get_table(table)
        except Exception:
            return None  # moto answers ResourceNotFound itself
        sse = found.sse_specification or {}
        return sse.get("KMSMasterKeyId") if sse.get("Enabled") else None


def _attached(principal: Any) -> list[tuple[str, Any]]:
    """A moto role's or user's inline and attached managed policies, as (name, document)."""
    docs = [(f"inline policy {name}", json.loads(doc)) for name, doc in sorted(principal.policies.items())]
    for arn, policy in sorted(principal.managed_policies.items()):
        version = next(v for v in policy.versions if v.version_id == policy.default_version_id)
        docs.append((f"policy {arn.rsplit('/', 1)[-1]}", json.loads(version.document)))
    return docs


def _ciphertext_key_id(params: dict[str, Any]) -> str | None:
    from moto.kms.utils import _deserialize_ciphertext_blob

    try:
        return _deserialize_ciphertext_blob(base64.b64decode(params["CiphertextBlob"])).key_id
    except Exception:
        return None


class Gateway:
    """The WSGI layer; ``register`` tells it who holds which access key."""

    def __init__(self, app: Callable[..., Any], state: MotoState | None = None) -> None:
        self.app = app
        self.state = state or MotoState()
        self._identities: dict[str, Identity] = {}
        self._lock = threading.Lock()
        self.decisions: list[dict[str, Any]] = []
        self.served: Any = None  # offline.emulator.served.ServedApis, once a deployment is up
        self.outages = Outages()
        self.trail = Trail(key_policy=self._key_policy)

    def register(self, access_key: str, identity: Identity) -> None:
        with self._lock:
            self._identities[access_key] = identity

    def identity_policies(self, identity: Identity) -> list[tuple[str, Any]]:
        """What IAM reads for the caller: nothing for the root user (it may do anything), else the
        policies of its IAM user or role (the session's role)."""
        if identity.root:
            return []
        if ":user/" in identity.arn:
            return self.state.user_policies(identity.account, identity.arn)
        return self.state.role_policies(identity.account, identity.arn)

    def forget(self, access_key: str) -> None:
        """The key no longer authenticates (its user is gone)."""
        with self._lock:
            self._identities.pop(access_key, None)

    def issue(self, identity: Identity) -> dict[str, str]:
        """Temporary credentials for a role (what STS AssumeRole would hand out)."""
        access_key = "ASIA" + secrets.token_hex(8).upper()
        self.register(access_key, identity)
        return {
            "AccessKeyId": access_key,
            "SecretAccessKey": secrets.token_hex(20),
            "SessionToken": secrets.token_hex(32),
        }

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith("/moto-api"):
            return self.app(environ, start_response)
        match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        if match and environ.get("PATH_INFO") != CONTROL_PATH and self.outages.refuses(match.group(2), match.group(3)):
            return _unavailable(environ, start_response, match.group(2), match.group(3))
        identity = self._identities.get(match.group(1)) if match else None
        if identity is None or match is None:
            return _error(start_response, "UnrecognizedClientException", "unknown access key (emulated IAM)")
        if environ.get("PATH_INFO") == CONTROL_PATH:
            return self._control(environ, start_response, identity)
        environ["HTTP_X_MOTO_ACCOUNT_ID"] = identity.account
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        answer = sts.handle(self, identity, environ, body) if match.group(3) == "sts" else None
        if answer is None and identity.admin and self.served is not None:
            answer = self.served.handle(environ, body, match.group(2), match.group(3))
        if answer is not None:
            status, headers, payload = answer
            start_response(status, [*headers, ("Content-Length", str(len(payload)))])
            return [payload]
        # e.g. TrentService.Decrypt; CloudTrail's prefix has dots of its own (com.amazonaws.cloudtrail...)
        prefix, _, operation = environ.get("HTTP_X_AMZ_TARGET", "").rpartition(".")
        service = _TARGETS.get(prefix, match.group(3))
        if service == "cloudtrail" and operation == "LookupEvents":
            return self._lookup_events(start_response, identity, body, match.group(2))
        operation = operation or _query_action(environ, body)
        try:
            self.check(identity, service, operation, body, match.group(2))
        except Denied as exc:
            self._audit(
                identity, match.group(1), service, operation, environ, body, match.group(2), (exc.code, str(exc))
            )
            return _error(start_response, exc.code, str(exc))
        where = (match.group(1), match.group(2))
        if service == "secretsmanager" and operation == "RotateSecret" and self.served is not None:
            status, headers, payload = self.served.rotate_secret(identity.account, match.group(2), body)
            error = _answer_error(status, payload)
            self._audit(identity, where[0], service, operation, environ, body, where[1], error)
            start_response(status, [*headers, ("Content-Length", str(len(payload)))])
            return [payload]
        return self._answered(environ, start_response, identity, where, service, operation, body)

    # -- the emulated trail --------------------------------------------------------------------
    def _answered(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        identity: Identity,
        where: tuple[str, str],
        service: str,
        operation: str,
        body: bytes,
    ) -> Iterable[bytes]:
        """moto's answer, recorded in the trail with the error it carries (NotFound...); ``where``:
        the access key and the region of the request."""
        seen: list[Any] = []

        def keep(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            seen.append((status, headers))
            return start_response(status, headers, *rest)

        payload = b"".join(self.app(environ, keep))
        error = _answer_error(seen[0][0], payload) if seen else None
        self._audit(identity, where[0], service, operation, environ, body, where[1], error)
        return [payload]

    def _audit(
        self,
        identity: Identity,
        access_key: str,
        service: str,
        operation: str,
        environ: dict[str, Any],
        body: bytes,
        region: str,
        error: tuple[str, str] | None,
    ) -> None:
        if not operation or not region:
            return  # S3's REST requests name no operation (not recorded, see offline/emulator/cloudtrail.py)
        params = _request_params(environ, body)
        self.trail.record(
            identity=user_identity(identity.account, identity.arn, identity.admin, identity.session_arn, access_key),
            service=service,
            operation=operation,
            params=params,
            region=region,
            resources=self._resources(identity, service, operation, params, region),
            error=error,
        )

    def _resources(
        self, identity: Identity, service: str, operation: str, params: dict[str, Any], region: str
    ) -> list[tuple[str, str]]:
        """The resources CloudTrail names: a KMS request's key (found from a ciphertext when the
        request names none), by its ARN."""
        if service != "kms" or operation in NOT_KEY_SCOPED:
            return []
        key_id = str(params.get("KeyId") or "") or (_ciphertext_key_id(params) if "CiphertextBlob" in params else "")
        key = self.state.key(identity.account, region, key_id) if key_id else None
        if key is not None:
            return [("AWS::KMS::Key", key.arn)]
        return [("AWS::KMS::Key", key_id)] if key_id.startswith("arn:aws:kms:") else []

    def _key_policy(self, account: str, region: str, key_ref: str) -> tuple[str, Any] | None:
        key = self.state.key(account, region, key_ref)
        return (key.arn, json.loads(key.policy)) if key is not None else None

    def _lookup_events(
        self, start_response: Callable[..., Any], identity: Identity, body: bytes, region: str
    ) -> list[bytes]:
        """cloudtrail:LookupEvents, answered from the emulated trail (the account's administrator only)."""
        if not identity.admin:
            return _error(
                start_response, "AccessDeniedException", f"{identity.arn}: cloudtrail is not emulated for roles"
            )
        try:
            answer = self.trail.lookup_events(identity.account, region, json.loads(body or b"{}"))
        except ValueError as exc:
            return _error(start_response, "InvalidLookupAttributesException", str(exc))
        payload = json.dumps(answer).encode()
        start_response(
            "200 OK", [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(payload)))]
        )
        return [payload]

    def _control(self, environ: dict[str, Any], start_response: Callable[..., Any], identity: Identity) -> list[bytes]:
        """POST {"region": R, "down": true|false, "services": [...]} (the emulator's administrator only)."""
        if not identity.admin:
            return _error(start_response, "AccessDeniedException", f"{identity.arn}: only the emulator's administrator")
        if environ.get("REQUEST_METHOD") == "POST":
            order = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)) or b"{}")
            if order.get("down"):
                self.outages.start(str(order["region"]), order.get("services") or None)
            else:
                self.outages.end(str(order["region"]))
        body = json.dumps({"outages": self.outages.snapshot()}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    # -- decisions -----------------------------------------------------------------------------
    def check(self, identity: Identity, service: str, operation: str, body: bytes, region: str) -> None:
        if service == "secretsmanager" and operation in SECRET_OPERATIONS and not identity.admin:
            self.check_secret(identity, json.loads(body or b"{}"), region, operation)
            return
        if service == "ssm" and operation in SSM_READS and not identity.admin:
            self.check_parameters(identity, operation, json.loads(body or b"{}"), region)
            return
        if service not in ("kms", "dynamodb", "dynamodbstreams") or not operation:
            if not identity.admin:
                raise Denied("AccessDeniedException", f"{identity.arn}: {service} is not emulated for roles")
            return
        params = json.loads(body or b"{}")
        if service == "kms" and operation == "Decrypt" and not params.get("KeyId"):
            params = {**params, "KeyId": _ciphertext_key_id(params) or ""}
        action, resource, context = request_target(service, operation, params, region, identity.account)
        if not identity.admin or service == "kms":
            decision = self.authorize(identity, action, resource, context, region)
            self._record(identity, action, resource, decision)
            if not decision.allowed:
                message = (
                    f"User: {identity.arn} is not authorized to perform: {action} on resource: {resource} "
                    f"(emulated IAM: {decision.reason})"
                )
                raise Denied("AccessDeniedException", message)
        if service == "kms" and operation == "UpdatePrimaryRegion":
            self.check_promoted_replica(identity, params, context)
        if service == "dynamodb" and operation in DATA_OPERATIONS:
            for table in _tables(params):
                self.check_table_key(identity, region, table)
        index = params.get("IndexName") if service == "dynamodb" and operation in ("Query", "Scan") else None
        if index and index_builds.building(identity.account, region, str(params.get("TableName")), index):
            raise Denied("ValidationException", index_builds.refusal(index))

    def check_parameters(self, identity: Identity, operation: str, params: dict[str, Any], region: str) -> None:
        """An SSM read as IAM decides it: every name of GetParameters must be allowed (String parameters
        only are published: no kms:Decrypt is involved)."""
        for action, resource, context in ssm_targets(operation, params, region, identity.account):
            decision = self.authorize(identity, action, resource, context, region)
            self._record(identity, action, resource, decision)
            if not decision.allowed:
                raise Denied(
                    "AccessDeniedException",
                    f"User: {identity.arn} is not authorized to perform: {action} on resource: {resource} "
                    f"(emulated IAM: {decision.reason})",
                )

    def check_promoted_replica(self, identity: Identity, params: dict[str, Any], context: dict[str, Any]) -> None:
        """KMS also needs kms:UpdatePrimaryRegion on the replica in PrimaryRegion (its key policy),
        and that region must answer."""
        target = str(params.get("PrimaryRegion", ""))
        key_id = str(params.get("KeyId", "")).rsplit("/", 1)[-1]
        if not target or self.state.key(identity.account, target, key_id) is None:
            return  # KMS answers (NotFound / no-op) itself
        if self.outages.refuses(target, "kms"):
            raise Denied("KMSInternalException", f"KMS in {target} is unavailable (emulated region outage)")
        replica = f"arn:aws:kms:{target}:{identity.account}:key/{key_id}"
        decision = self.authorize(identity, "kms:UpdatePrimaryRegion", replica, context, target)
        self._record(identity, "kms:UpdatePrimaryRegion", replica, decision)
        if not decision.allowed:
            raise Denied(
                "AccessDeniedException",
                f"User: {identity.arn} is not authorized to perform: kms:UpdatePrimaryRegion on resource: {replica} "
                f"(emulated IAM: {decision.reason})",
            )

    def authorize(
        self, identity: Identity, action: str, resource: str, context: dict[str, Any], region: str
    ) -> Decision:
        identity_policies = self.identity_policies(identity)
        context = {**context, **identity.principal_tags()}
        if not action.startswith("kms:") or resource == "*":
            return authorize(
                Request(identity.caller, action, resource, context),
                identity_policies=identity_policies,
                identity_allows_all=identity.root,
            )
        if resource.startswith("arn:") and resource.split(":")[3] != region:
            return Decision(False, f"{resource} is not a key of {region}")
        key = self.state.key(identity.account, region, resource)
        if key is None:
            return Decision(True, "no such key: KMS answers NotFound")
        # KMS authorizes key use with the key's tags (aws:ResourceTag/*, e.g. a tenant key's "tenant").
        context = {**context, **self.state.key_tags(identity.account, region, key.arn)}
        request = Request(identity.caller, action, key.arn, context)
        return authorize(
            request,
            identity_policies=identity_policies,
            resource_policy=(f"key policy of {key.arn}", json.loads(key.policy)),
            resource_policy_required=True,
            identity_allows_all=identity.root,
        )

    def check_secret(
        self, identity: Identity, params: dict[str, Any], region: str, operation: str = "GetSecretValue"
    ) -> None:
        """A Secrets Manager request by a role: its identity policies must allow it on the secret;
        Secrets Manager decrypts (GetSecretValue) or encrypts (PutSecretValue) with the secret's KMS
        key on the caller's behalf, so the caller must be allowed that KMS action through
        secretsmanager.<region> with the secret's ARN as context; RotateSecret also needs
        lambda:InvokeFunction on the secret's rotation function (Secrets Manager's documented rule)."""
        action, resource, context = request_target("secretsmanager", operation, params, region, identity.account)
        decision = self.authorize(identity, action, resource, context, region)
        self._record(identity, action, resource, decision)
        if not decision.allowed:
            raise Denied(
                "AccessDeniedException",
                f"User: {identity.arn} is not authorized to perform: {action} on resource: {resource} "
                f"(emulated IAM: {decision.reason})",
            )
        if operation == "RotateSecret":
            self._check_rotation_function(identity, params, region, resource)
        kms_action = SECRET_KEY_ACTIONS.get(operation)
        exists, key_ref = self.state.secret_key(identity.account, region, resource)
        if kms_action is None or not exists or key_ref is None:
            return  # no KMS use; moto answers ResourceNotFound; or the AWS managed key (usable in the account)
        key = self.state.key(identity.account, region, key_ref)
        kms_context = {
            "kms:ViaService": f"secretsmanager.{region}.amazonaws.com",
            "kms:CallerAccount": identity.account,
            "kms:EncryptionContext:SecretARN": resource,
            "kms:EncryptionContextKeys": ["SecretARN", "SecretVersionId"],
        }
        decided = (
            self.authorize(identity, kms_action, key.arn, kms_context, region)
            if key is not None
            else Decision(False, f"the secret's key {key_ref} is not a key of {region}")
        )
        self._record(identity, kms_action, key_ref, decided)
        if not decided.allowed:
            raise Denied(
                "AccessDeniedException",
                f"Access to KMS is not allowed: Secrets Manager could not decrypt {resource} for {identity.arn} "
                f"(emulated IAM: {decided.reason})",
            )

    def _check_rotation_function(self, identity: Identity, params: dict[str, Any], region: str, secret: str) -> None:
        named = params.get("RotationLambdaARN")
        function = str(named or self.state.rotation_function(identity.account, region, secret))
        if not function:
            return  # Secrets Manager answers that no rotation function is associated
        decision = self.authorize(identity, "lambda:InvokeFunction", function, {}, region)
        self._record(identity, "lambda:InvokeFunction", function, decision)
        if not decision.allowed:
            raise Denied(
                "AccessDeniedException",
                f"User: {identity.arn} is not authorized to perform: lambda:InvokeFunction on resource: {function} "
                f"(emulated IAM: {decision.reason})",
            )

    def check_table_key(self, identity: Identity, region: str, table: str) -> None:
        key_ref = self.state.table_sse_key(identity.account, region, table)
        if key_ref is None:
            return  # not encrypted with a customer managed key (or no such table)
        where = f"table {table} in {region}"
        key_region = key_ref.split(":")[3] if key_ref.startswith("arn:") else region
        key = self.state.key(identity.account, region, key_ref) if key_region == region else None
        if key_region != region:
            reason = f"its SSE key {key_ref} is in {key_region}: DynamoDB can use only a KMS key of {region}"
        elif key is None:
            reason = f"its SSE key {key_ref} does not exist in {region}"
        else:
            context = {"kms:ViaService": f"dynamodb.{region}.amazonaws.com", "kms:CallerAccount": identity.account}
            decision = authorize(
                Request(identity.caller, "kms:Decrypt", key.arn, context),
                resource_policy=(f"key policy of {key.arn}", json.loads(key.policy)),
                resource_policy_required=True,
                identity_allows_all=True,
            )
            if decision.allowed:
                return
            reason = (
                f"the key policy of its SSE key does not let {identity.arn} use it through DynamoDB ({decision.reason})"
            )
        raise Denied(
            "AccessDeniedException",
            f"The KMS key of {where} is inaccessible (emulated DynamoDB encryption at rest: the KMS key of "
            f"{where} is inaccessible: {reason})",
        )

    def _record(self, identity: Identity, action: str, resource: str, decision: Decision) -> None:
        if not identity.admin:
            with self._lock:
                self.decisions.append(
                    {
                        "principal": identity.arn,
                        "action": action,
                        "resource": resource,
                        "allowed": decision.allowed,
                        "reason": decision.reason,
                    }
                )
                del self.decisions[:-1000]


def _query_action(environ: dict[str, Any], body: bytes) -> str:
    """The operation of a query-protocol request (SNS, CloudWatch, IAM, STS...): its Action."""
    if not environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        return ""
    return parse_qs(body.decode(errors="replace")).get("Action", [""])[0]


def _request_params(environ: dict[str, Any], body: bytes) -> dict[str, Any]:
    """The request's parameters: the JSON body, or a query request's form (Action and Version left out)."""
    if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        form = {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()}
        return {k: v for k, v in form.items() if k not in ("Action", "Version")}
    try:
        params = json.loads(body or b"{}")
    except ValueError:
        return {}
    return params if isinstance(params, dict) else {}


def _answer_error(status: str, payload: bytes) -> tuple[str, str] | None:
    """(errorCode, errorMessage) of an error answer (JSON or XML protocol), None for a success."""
    if status[:1] not in ("4", "5"):
        return None
    try:
        found = json.loads(payload)
        code = str(found.get("__type", "")).rsplit("#", 1)[-1]
        return code or status, str(found.get("message") or found.get("Message") or "")
    except ValueError:
        code = re.search(rb"<Code>([^<]+)</Code>", payload)
        message = re.search(rb"<Message>([^<]*)</Message>", payload)
        return (code.group(1).decode() if code else status), (message.group(1).decode() if message else "")


def _tables(params: dict[str, Any]) -> list[str]:
    if "TableName" in params:
        return [str(params["TableName"])]
    names = list(params.get("RequestItems") or {})
    for item in params.get("TransactItems") or []:
        names += [op["TableName"] for op in item.values() if isinstance(op, dict) and "TableName" in op]
    return sorted(set(names))


def _unavailable(environ: dict[str, Any], start_response: Callable[..., Any], region: str, service: str) -> list[bytes]:
    """503 ServiceUnavailable in the protocol the client parses (query APIs read XML)."""
    message = f"{service} in {region} is unavailable (emulated region outage; `python -m offline recover {region}`)"
    if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        content_type = "text/xml"
        body = (
            "<ErrorResponse><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code>"
            f"<Message>{message}</Message></Error><RequestId>emulated-outage</RequestId></ErrorResponse>"
        ).encode()
    else:
        content_type = "application/x-amz-json-1.0"
        body = json.dumps({"__type": "ServiceUnavailable", "message": message}).encode()
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    headers += [("x-amzn-ErrorType", "ServiceUnavailable"), ("x-amzn-RequestId", "emulated-outage")]
    start_response("503 Service Unavailable", headers)
    return [body]


def _error(start_response: Callable[..., Any], code: str, message: str) -> list[bytes]:
    body = json.dumps({"__type": code, "message": message}).encode()
    start_response(
        "400 Bad Request",
        [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("Content-Length", str(len(body))),
            ("x-amzn-RequestId", "emulated-iam"),
        ],
    )
    return [body]
