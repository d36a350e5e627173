"""EMULATION of the resources secret rotation deploys (a Provisioner mixin):

* ``AWS::SecretsManager::SecretTargetAttachment`` (an RDS cluster): the secret gets the cluster's
  ``engine`` (``postgres``), ``host``, ``port`` and ``dbClusterIdentifier``, as a new AWSCURRENT
  version (what Secrets Manager does); deleting it leaves the secret as it is;
* ``AWS::Lambda::Permission``: recorded on its function (Lambda GetPolicy and the rotation's
  invoke decision read it back: offline/emulator/served.py), the function must be deployed;
* ``AWS::SecretsManager::RotationSchedule``: the secret's rotation set (offline/emulator/secret_rotation.py);
  ``RotateImmediatelyOnUpdate`` true (a rotation during the deployment) is refused as not emulated;
  deleting it cancels the rotation.
"""

from __future__ import annotations

import json
from typing import Any

from cloud_assembly.intrinsics import UnsupportedTemplate
from offline.emulator import secret_rotation
from offline.emulator.deployment import DeployedResource, DeployedStack, Deployment

ENGINES = {"aurora-postgresql": "postgres"}


class SecretRotationResources:
    account: str

    def client(self, service: str, region: str) -> Any:  # the Provisioner's
        raise NotImplementedError

    # --- SecretTargetAttachment --------------------------------------------------------------
    def _create_aws_secretsmanager_secrettargetattachment(
        self, stack: Any, lid: str, p: dict[str, Any], d: Deployment
    ) -> tuple[str, dict[str, str]]:
        if p.get("TargetType") != "AWS::RDS::DBCluster":
            raise UnsupportedTemplate(f"{stack.name}/{lid}: TargetType {p.get('TargetType')!r} is not emulated")
        cluster = _cluster(d, stack.region, str(p.get("TargetId")))
        if cluster is None:
            raise UnsupportedTemplate(f"{stack.name}/{lid}: TargetId {p.get('TargetId')!r} names no deployed cluster")
        engine = ENGINES.get(str(cluster.properties.get("Engine")))
        if engine is None:
            raise UnsupportedTemplate(f"{stack.name}/{lid}: engine {cluster.properties.get('Engine')!r} not emulated")
        manager = self.client("secretsmanager", stack.region)
        secret_id = str(p["SecretId"])
        value = json.loads(manager.get_secret_value(SecretId=secret_id)["SecretString"])
        value.update(
            engine=engine,
            host=cluster.attributes["Endpoint.Address"],
            port=int(cluster.attributes["Endpoint.Port"]),
            dbClusterIdentifier=cluster.physical_id,
        )
        arn = manager.put_secret_value(SecretId=secret_id, SecretString=json.dumps(value))["ARN"]
        return str(arn), {}

    def _update_aws_secretsmanager_secrettargetattachment(
        self, stack: Any, lid: str, previous: DeployedResource, p: dict[str, Any], d: Deployment
    ) -> tuple[str, dict[str, str], str]:
        pid, attrs = self._create_aws_secretsmanager_secrettargetattachment(stack, lid, p, d)
        return pid, attrs, "the secret names the cluster again"

    def _delete_aws_secretsmanager_secrettargetattachment(
        self, stack: DeployedStack, resource: DeployedResource, d: Deployment
    ) -> str:
        return f"{resource.physical_id} detached (its value keeps the cluster's fields)"

    # --- Lambda permission -------------------------------------------------------------------
    def _create_aws_lambda_permission(
        self, stack: Any, lid: str, p: dict[str, Any], d: Deployment
    ) -> tuple[str, dict[str, str]]:
        function = str(p.get("FunctionName", ""))
        if not any(f.arn == function for f in d.functions):
            raise UnsupportedTemplate(f"{stack.name}/{lid}: FunctionName {function!r} is not a deployed function's ARN")
        if p.get("Action") != "lambda:InvokeFunction":
            raise UnsupportedTemplate(f"{stack.name}/{lid}: Action {p.get('Action')!r} is not emulated")
        return f"{function}|{lid}", {}

    def _update_aws_lambda_permission(
        self, stack: Any, lid: str, previous: DeployedResource, p: dict[str, Any], d: Deployment
    ) -> tuple[str, dict[str, str], str]:
        pid, attrs = self._create_aws_lambda_permission(stack, lid, p, d)
        return pid, attrs, "the function's policy statement replaced"

    def _delete_aws_lambda_permission(self, stack: DeployedStack, resource: DeployedResource, d: Deployment) -> str:
        return "removed from the function's policy"

    # --- RotationSchedule --------------------------------------------------------------------
    def _create_aws_secretsmanager_rotationschedule(
        self, stack: Any, lid: str, p: dict[str, Any], d: Deployment
    ) -> tuple[str, dict[str, str]]:
        if p.get("HostedRotationLambda"):
            raise UnsupportedTemplate(f"{stack.name}/{lid}: HostedRotationLambda (a SAM application) is not emulated")
        if p.get("RotateImmediatelyOnUpdate", True) not in (False, "false"):
            raise UnsupportedTemplate(
                f"{stack.name}/{lid}: RotateImmediatelyOnUpdate true (a rotation during the deployment) is not "
                "emulated: set it false and rotate with RotateSecret"
            )
        try:
            arn = secret_rotation.schedule(
                self.account,
                stack.region,
                str(p.get("SecretId")),
                str(p.get("RotationLambdaARN", "")),
                dict(p.get("RotationRules") or {}),
            )
        except secret_rotation.RotationRefused as refused:
            raise UnsupportedTemplate(f"{stack.name}/{lid}: {refused.code}: {refused}") from None
        return arn, {}

    def _update_aws_secretsmanager_rotationschedule(
        self, stack: Any, lid: str, previous: DeployedResource, p: dict[str, Any], d: Deployment
    ) -> tuple[str, dict[str, str], str]:
        pid, attrs = self._create_aws_secretsmanager_rotationschedule(stack, lid, p, d)
        return pid, attrs, "the secret's rotation set again"

    def _delete_aws_secretsmanager_rotationschedule(
        self, stack: DeployedStack, resource: DeployedResource, d: Deployment
    ) -> str:
        secret_rotation.unschedule(self.account, stack.region, resource.physical_id)
        return f"rotation of {resource.physical_id} cancelled"


def _cluster(d: Deployment, region: str, identifier: str) -> DeployedResource | None:
    for stack in d.stacks.values():
        if stack.region != region:
            continue
        for resource in stack.resources.values():
            if resource.type == "AWS::RDS::DBCluster" and resource.physical_id == identifier:
                return resource
    return None
