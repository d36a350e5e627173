"""The APIs moto cannot serve for an emulated deployment, answered for ordinary clients
(`aws lambda invoke`, boto3) by the gateway: Lambda Invoke and GetFunctionConfiguration (the
real handlers, run under their roles), CloudFormation DescribeStacks (the stacks' status and
outputs), ListStackResources, GetTemplate and DeleteStack (deletes the stack's resources
honouring DeletionPolicy), IAM SimulatePrincipalPolicy (decided by ``policy_engine``, key policy
and context entries included), Lambda GetPolicy (the function's deployed AWS::Lambda::Permission
resources), RDS DescribeDBClusters and DescribeDBInstances (the Aurora
clusters and instances as deployed: their encryption and Performance Insights settings, from the
properties they were deployed with; moto holds no RDS resource of the emulated Aurora), RDS
DescribeGlobalClusters (the members, the writer as it is now, the global writer endpoint), the RDS calls
that remove what a deleted stack retained (offline/emulator/rds_leftovers.py), and the
emulator's own ``POST /_offline/deploy`` (a changed cloud assembly applied as a stack update:
``python -m offline deploy``). Only the account's administrator reaches these, except Secrets
Manager RotateSecret, which the gateway hands here for any caller it authorized (the rotation
function run as Secrets Manager runs it: offline/emulator/secret_rotation.py).
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from cloud_assembly.intrinsics import UnsupportedTemplate
from cloud_assembly.reader import load_assembly
from offline.emulator import secret_rotation
from offline.emulator.rds_leftovers import RdsLeftovers, rds_resources
from offline.emulator.resource_lifecycle import StackOperationFailed
from policy_engine import Caller, Request, authorize

_INVOKE = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")
_CONFIGURATION = re.compile(r"^/2015-03-31/functions/([^/]+)/configuration$")
_POLICY = re.compile(r"^/2015-03-31/functions/([^/]+)/policy$")
DEPLOY_PATH = "/_offline/deploy"
_NO_POLICY = "The resource you requested does not exist."
_CFN = "http://cloudformation.amazonaws.com/doc/2010-05-15/"
Response = tuple[str, list[tuple[str, str]], bytes]


class ServedApis:
    def __init__(self, deployment: Any, host: Any, state: Any, lifecycle: Any = None) -> None:
        self.deployment, self.host, self.state = deployment, host, state
        self.lifecycle = lifecycle  # offline.verification.emulated.EmulatedEnvironment: apply / delete_stack

    def handle(self, environ: dict[str, Any], body: bytes, region: str, service: str) -> Response | None:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if service == "lambda" and (m := _INVOKE.match(path)) and method == "POST":
            return self._invoke(region, m.group(1), body)
        if service == "lambda" and (m := _CONFIGURATION.match(path)):
            return self._configuration(region, m.group(1))
        if service == "lambda" and (m := _POLICY.match(path)) and method == "GET":
            return self._function_policy(region, m.group(1))
        if path == DEPLOY_PATH and method == "POST" and self.lifecycle is not None:
            return self._deploy(body)
        if service in ("cloudformation", "iam", "rds") and method == "POST":
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            action, name = form.get("Action"), form.get("StackName", "")
            if action == "DescribeStacks":
                return self._describe_stacks(region, name)
            if action in ("ListStackResources", "GetTemplate", "DeleteStack"):
                return self._stack_action(action, region, name)
            if action == "SimulatePrincipalPolicy":
                return self._simulate(form)
            if action in ("DescribeDBClusters", "DescribeDBInstances"):
                return self._describe_rds(action, region, form)
            if action == "DescribeGlobalClusters":
                return self._describe_global_clusters(region, form)
            if service == "rds" and action in RdsLeftovers.ACTIONS:
                return RdsLeftovers(self.deployment).handle(action, region, form)
        return None

    def _deploy(self, body: bytes) -> Response:
        try:
            assembly = load_assembly(json.loads(body)["cdk_out"])
            changes = self.lifecycle.apply(assembly)
        except (StackOperationFailed, UnsupportedTemplate, FileNotFoundError, KeyError, ValueError) as exc:
            return _json_error(400, "DeployFailed", str(exc))
        left = sorted(set(self.deployment.stacks) - set(assembly.stacks))
        payload = {
            "changes": [change.render() for change in changes],
            "not_in_assembly": [{"name": n, "region": self.deployment.stacks[n].region} for n in left],
            "regions": [self.lifecycle.primary_region, *self.lifecycle.replica_regions],
        }
        return "200 OK", [("Content-Type", "application/json")], json.dumps(payload).encode()

    def _stack(self, region: str, name: str) -> Any:
        stack = self.deployment.stacks.get(name)
        return stack if stack is not None and stack.region == region else None

    def _stack_action(self, action: str, region: str, name: str) -> Response:
        stack = self._stack(region, name)
        if action == "DeleteStack":
            if stack is not None and self.lifecycle is not None:
                # asynchronous in CloudFormation: a failure shows in DescribeStacks (DELETE_FAILED)
                with contextlib.suppress(StackOperationFailed):
                    self.lifecycle.delete_stack(name)
            return _xml(action, _CFN, "")
        if stack is None:
            return _xml_error("ValidationError", f"Stack with id {name} does not exist")
        if action == "GetTemplate":
            body = escape(json.dumps(stack.artifact.template))
            return _xml(action, _CFN, f"<GetTemplateResult><TemplateBody>{body}</TemplateBody></GetTemplateResult>")
        members = "".join(
            f"<member><LogicalResourceId>{escape(r.logical_id)}</LogicalResourceId>"
            f"<PhysicalResourceId>{escape(r.physical_id)}</PhysicalResourceId>"
            f"<ResourceType>{escape(r.type)}</ResourceType><ResourceStatus>CREATE_COMPLETE</ResourceStatus>"
            "<LastUpdatedTimestamp>2026-01-01T00:00:00Z</LastUpdatedTimestamp></member>"
            for r in stack.resources.values()
        )
        result = f"<ListStackResourcesResult><StackResourceSummaries>{members}</StackResourceSummaries>"
        return _xml(action, _CFN, result + "</ListStackResourcesResult>")

    def _function(self, region: str, name: str) -> Any:
        for spec in self.deployment.functions:
            if spec.region == region and name in (spec.name, spec.arn):
                return spec
        return None

    def _invoke(self, region: str, name: str, body: bytes) -> Response:
        spec = self._function(region, name)
        if spec is None:
            return _json_error(404, "ResourceNotFoundException", f"Function not found: {name}")
        try:
            event = _invoke_payload(body)
        except InvalidPayload as exc:
            return _json_error(400, "InvalidRequestContentException", str(exc))
        reply = self.host.invoke(region, spec.kind, event)
        headers = [("Content-Type", "application/json"), ("X-Amz-Executed-Version", "$LATEST")]
        if reply.get("function_error"):
            headers.append(("X-Amz-Function-Error", "Unhandled"))
            payload = {"errorType": reply.get("error_type", "Error"), "errorMessage": "see the function's log"}
            return "200 OK", headers, json.dumps(payload).encode()
        return "200 OK", headers, json.dumps(reply.get("result")).encode()

    def _function_policy(self, region: str, name: str) -> Response:
        """Lambda GetPolicy: the function's resource policy, from its deployed AWS::Lambda::Permission
        resources (404 when it has none, as Lambda answers)."""
        spec = self._function(region, name)
        if spec is None:
            return _json_error(404, "ResourceNotFoundException", f"Function not found: {name}")
        statements = function_policy_statements(self.deployment, spec.arn)
        if not statements:
            return _json_error(404, "ResourceNotFoundException", _NO_POLICY)
        policy = {"Version": "2012-10-17", "Id": "default", "Statement": statements}
        answer = {"Policy": json.dumps(policy), "RevisionId": "emulated"}
        return "200 OK", [("Content-Type", "application/json")], json.dumps(answer).encode()

    def rotate_secret(self, account: str, region: str, body: bytes) -> Response:
        """Secrets Manager RotateSecret (offline/emulator/secret_rotation.py), the caller already authorized."""
        params = json.loads(body or b"{}")
        if params.get("RotationLambdaARN") or params.get("RotationRules"):
            return _secrets_error("InvalidParameterException", "set the rotation with the RotationSchedule resource")

        def invoke(function_arn: str, event: dict[str, Any]) -> dict[str, Any]:
            spec = next((f for f in self.deployment.functions if f.arn == function_arn), None)
            if spec is None:
                return {"function_error": "Unhandled", "error_type": "ResourceNotFoundException"}
            reply: dict[str, Any] = self.host.invoke(spec.region, spec.kind, event)
            return reply

        try:
            done = secret_rotation.rotate(
                account,
                region,
                str(params.get("SecretId", "")),
                token=params.get("ClientRequestToken"),
                function_policies=lambda arn: [
                    {"Version": "2012-10-17", "Statement": function_policy_statements(self.deployment, arn)}
                ],
                invoke=invoke,
            )
        except secret_rotation.RotationRefused as refused:
            return _secrets_error(refused.code, str(refused))
        answer = {"ARN": done.arn, "Name": done.name, "VersionId": done.version_id}
        return "200 OK", [("Content-Type", "application/x-amz-json-1.1")], json.dumps(answer).encode()

    def _configuration(self, region: str, name: str) -> Response:
        spec = self._function(region, name)
        if spec is None:
            return _json_error(404, "ResourceNotFoundException", f"Function not found: {name}")
        config = {
            "FunctionName": spec.name,
            "FunctionArn": spec.arn,
            "Role": spec.role_arn,
            "Handler": spec.handler,
            "Runtime": spec.runtime,
            "Timeout": spec.timeout,
            "MemorySize": spec.memory,
            "Environment": {"Variables": spec.environment},
        }
        return "200 OK", [("Content-Type", "application/json")], json.dumps(config).encode()

    def _describe_stacks(self, region: str, name: str) -> Response:
        stacks = [s for s in self.deployment.stacks.values() if s.region == region and name in ("", s.name)]
        if not stacks:
            return _xml_error("ValidationError", f"Stack with id {name} does not exist")
        members = []
        for stack in stacks:
            outputs = "".join(
                f"<member><OutputKey>{escape(k)}</OutputKey><OutputValue>{escape(str(v))}</OutputValue></member>"
                for k, v in sorted(self.deployment.outputs.get(stack.name, {}).items())
            )
            reason = f"<StackStatusReason>{escape(stack.reason)}</StackStatusReason>" if stack.reason else ""
            members.append(
                f"<member><StackName>{escape(stack.name)}</StackName>"
                f"<StackId>arn:aws:cloudformation:{region}:{self.deployment.account}:stack/{escape(stack.name)}/emulated"
                "</StackId><CreationTime>2026-01-01T00:00:00Z</CreationTime>"
                f"<StackStatus>{stack.status}</StackStatus>{reason}<Outputs>{outputs}</Outputs></member>"
            )
        result = f"<DescribeStacksResult><Stacks>{''.join(members)}</Stacks></DescribeStacksResult>"
        return _xml("DescribeStacks", _CFN, result)

    def _describe_rds(self, action: str, region: str, form: dict[str, str]) -> Response:
        """The deployed clusters (or instances) of ``region``, or the one named: what RDS reports of
        their encryption at rest, from the properties they were deployed with."""
        kind = "DBCluster" if action == "DescribeDBClusters" else "DBInstance"
        wanted = form.get(f"{kind}Identifier")
        members = []
        for r_region, r in rds_resources(self.deployment):  # retained ones too: RDS keeps them
            if r.type == f"AWS::RDS::{kind}" and r_region == region and wanted in (None, r.physical_id):
                fields = _rds_fields(kind, r, f"arn:aws:kms:{region}:{self.deployment.account}:alias/aws/rds")
                body = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in fields.items() if v is not None)
                members.append(f"<{kind}>{body}</{kind}>")
        if wanted is not None and not members:
            return _xml_error(f"{kind}NotFoundFault", f"{kind} {wanted} not found.")
        result = f"<{action}Result><{kind}s>{''.join(members)}</{kind}s></{action}Result>"
        return _xml(action, "http://rds.amazonaws.com/doc/2014-10-31/", result)

    def _describe_global_clusters(self, region: str, form: dict[str, str]) -> Response:
        """The deployed global clusters with a member in ``region`` (or the one named): their member
        clusters, which of them is the writer now (it follows a switchover or failover: the emulated
        database's current writer), and the global writer endpoint, which always names that writer."""
        wanted = form.get("GlobalClusterIdentifier")
        aurora = self.deployment.aurora
        writer = aurora.writer_of_global() if aurora is not None else None
        resources = rds_resources(self.deployment)  # retained ones too: RDS keeps them
        found = []
        for _, glob in resources:
            if glob.type != "AWS::RDS::GlobalCluster" or wanted not in (None, glob.physical_id):
                continue
            members = [
                (r_region, str(r.attributes.get("DBClusterArn", "")))
                for r_region, r in resources
                if r.type == "AWS::RDS::DBCluster" and r.properties.get("GlobalClusterIdentifier") == glob.physical_id
            ]
            if region not in (r for r, _ in members) and wanted is None:
                continue
            found.append(_global_cluster_xml(glob, members, writer, self.deployment.account))
        if wanted is not None and not found:
            return _xml_error("GlobalClusterNotFoundFault", f"GlobalCluster {wanted} not found.")
        clusters = f"<GlobalClusters>{''.join(found)}</GlobalClusters>"
        result = f"<DescribeGlobalClustersResult>{clusters}</DescribeGlobalClustersResult>"
        return _xml("DescribeGlobalClusters", "http://rds.amazonaws.com/doc/2014-10-31/", result)

    def _simulate(self, form: dict[str, str]) -> Response:
        role, account = form["PolicySourceArn"], self.deployment.account
        actions = _members(form, "ActionNames")
        resources = _members(form, "ResourceArns") or ["*"]
        context = _context_entries(form)
        identity = self.state.role_policies(account, role)
        policy = json.loads(form["ResourcePolicy"]) if form.get("ResourcePolicy") else None
        results = []
        for action in actions:
            for resource in resources:
                decision = authorize(
                    Request(Caller(account, arn=role), action, resource, context),
                    identity_policies=identity,
                    resource_policy=("resource policy", policy) if policy else None,
                    resource_policy_required=action.lower().startswith("kms:") and policy is not None,
                )
                verdict = "allowed" if decision.allowed else "implicitDeny"
                if not decision.allowed and decision.reason.startswith("explicit deny"):
                    verdict = "explicitDeny"
                results.append(
                    f"<member><EvalActionName>{escape(action)}</EvalActionName><EvalResourceName>"
                    f"{escape(resource)}</EvalResourceName><EvalDecision>{verdict}</EvalDecision></member>"
                )
        body = (
            "<SimulatePrincipalPolicyResult><IsTruncated>false</IsTruncated><EvaluationResults>"
            f"{''.join(results)}</EvaluationResults></SimulatePrincipalPolicyResult>"
        )
        return _xml("SimulatePrincipalPolicy", "https://iam.amazonaws.com/doc/2010-05-08/", body)


def _global_cluster_xml(glob: Any, members: list[tuple[str, str]], writer: str | None, account: str) -> str:
    """One GlobalCluster as RDS's query API returns it (botocore names each list item GlobalClusterMember)."""
    p, identifier = glob.properties, glob.physical_id
    rows = []
    for member_region, arn in members:
        is_writer = member_region == writer
        readers = (
            "".join(f"<member>{escape(a)}</member>" for r, a in members if r != member_region) if is_writer else ""
        )
        rows.append(
            f"<GlobalClusterMember><DBClusterArn>{escape(arn)}</DBClusterArn><IsWriter>{str(is_writer).lower()}"
            f"</IsWriter><Readers>{readers}</Readers></GlobalClusterMember>"
        )
    fields = {
        "GlobalClusterIdentifier": identifier,
        "GlobalClusterArn": f"arn:aws:rds::{account}:global-cluster:{identifier}",
        "Status": "available",
        "Engine": p.get("Engine", ""),
        "EngineVersion": p.get("EngineVersion", ""),
        # A global cluster made from its primary takes the primary's encryption; said here when the template does.
        "StorageEncrypted": str(bool(p.get("StorageEncrypted", True))).lower(),
        "DeletionProtection": str(bool(p.get("DeletionProtection"))).lower(),
        "Endpoint": glob.attributes.get("GlobalEndpoint.Address", ""),
    }
    body = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in fields.items())
    return (
        f"<GlobalClusterMember>{body}<GlobalClusterMembers>{''.join(rows)}</GlobalClusterMembers></GlobalClusterMember>"
    )


def _rds_fields(kind: str, resource: Any, aws_key: str) -> dict[str, Any]:
    """A cluster's storage encryption, or an instance's Performance Insights store (no key named:
    the AWS managed key aws/rds, as RDS does)."""
    p = resource.properties
    if kind == "DBCluster":
        encrypted = bool(p.get("StorageEncrypted"))
        return {
            "DBClusterIdentifier": resource.physical_id,
            "DBClusterArn": resource.attributes.get("DBClusterArn", ""),
            "StorageEncrypted": str(encrypted).lower(),
            "KmsKeyId": p.get("KmsKeyId", aws_key) if encrypted else None,
            # RDS's defaults when the template says nothing: no deletion protection, 1 day of backups.
            "DeletionProtection": str(bool(p.get("DeletionProtection"))).lower(),
            "BackupRetentionPeriod": int(p.get("BackupRetentionPeriod", 1)),
        }
    insights = bool(p.get("EnablePerformanceInsights"))
    return {
        "DBInstanceIdentifier": resource.physical_id,
        "PerformanceInsightsEnabled": str(insights).lower(),
        "PerformanceInsightsKMSKeyId": p.get("PerformanceInsightsKMSKeyId", aws_key) if insights else None,
    }


def _members(form: dict[str, str], name: str) -> list[str]:
    found = sorted(
        ((int(k.rsplit(".", 1)[1]), v) for k, v in form.items() if re.fullmatch(rf"{name}\.member\.\d+", k)),
    )
    return [v for _, v in found]


def _context_entries(form: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    index = 1
    while f"ContextEntries.member.{index}.ContextKeyName" in form:
        prefix = f"ContextEntries.member.{index}"
        values = _members(form, f"{re.escape(prefix)}\\.ContextKeyValues")
        many = form.get(f"{prefix}.ContextKeyType", "string").endswith("List")
        out[form[f"{prefix}.ContextKeyName"]] = values if many else (values[0] if values else None)
        index += 1
    return out


def _xml(action: str, namespace: str, result: str) -> Response:
    body = (
        f'<{action}Response xmlns="{namespace}">{result}'
        f"<ResponseMetadata><RequestId>emulated</RequestId></ResponseMetadata></{action}Response>"
    )
    return "200 OK", [("Content-Type", "text/xml")], body.encode()


class InvalidPayload(ValueError):
    """An Invoke payload that is not JSON: Lambda answers 400 InvalidRequestContentException."""


def _invoke_payload(body: bytes) -> Any:
    """The event, parsed as Lambda does (an empty payload is ``{}``). The refusal names where the
    JSON broke, never the payload's text: it may hold a record's plaintext."""
    if not body:
        return {}
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        reason = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    except UnicodeDecodeError as exc:
        reason = f"invalid UTF-8 at byte {exc.start}"
    except RecursionError:
        reason = "the JSON is nested too deeply"
    raise InvalidPayload(f"Could not parse request body into json: Could not parse payload into json: {reason}")


def _xml_error(code: str, message: str) -> Response:
    body = (
        f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{escape(message)}</Message>"
        "</Error><RequestId>emulated</RequestId></ErrorResponse>"
    )
    return "400 Bad Request", [("Content-Type", "text/xml")], body.encode()


def function_policy_statements(deployment: Any, function_arn: str) -> list[dict[str, Any]]:
    """The statements Lambda's AddPermission makes of the deployment's AWS::Lambda::Permission
    resources on ``function_arn``."""
    out = []
    for stack in deployment.stacks.values():
        for resource in stack.resources.values():
            p = resource.properties
            if resource.type != "AWS::Lambda::Permission" or p.get("FunctionName") != function_arn:
                continue
            principal = str(p.get("Principal", ""))
            conditions: dict[str, Any] = {}
            if p.get("SourceAccount"):
                conditions["StringEquals"] = {"AWS:SourceAccount": p["SourceAccount"]}
            if p.get("SourceArn"):
                conditions["ArnLike"] = {"AWS:SourceArn": p["SourceArn"]}
            statement: dict[str, Any] = {
                "Sid": resource.logical_id,
                "Effect": "Allow",
                "Principal": {"Service": principal} if principal.endswith(".amazonaws.com") else {"AWS": principal},
                "Action": p.get("Action"),
                "Resource": function_arn,
            }
            if conditions:
                statement["Condition"] = conditions
            out.append(statement)
    return out


def _secrets_error(code: str, message: str) -> Response:
    body = json.dumps({"__type": code, "message": message}).encode()
    return "400 Bad Request", [("Content-Type", "application/x-amz-json-1.1")], body


def _json_error(status: int, code: str, message: str) -> Response:
    body = json.dumps({"Type": "User", "message": message}).encode()
    return f"{status} Error", [("Content-Type", "application/json"), ("X-Amzn-ErrorType", code)], body
