"""The audit stack's resources and the audit rules on the emulated AWS: the trail's S3 bucket (its
encryption, versioning, public access block, ownership, lifecycle) and bucket policy, the
CloudTrail trail, and the EventBridge rules (pattern, state, targets) that the emulated trail
(offline/emulator/cloudtrail.py) matches its records against.

Mixin of the Provisioner: ``_create_*`` / ``_update_*`` / ``_delete_*`` per type, as in
offline/emulator/resource_lifecycle.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from typing import Any

from cloud_assembly.reader import StackArtifact
from offline.emulator.deployment import DeployedResource, DeployedStack, Deployment

Created = tuple[str, dict[str, str]]


def _bucket_name(stack: StackArtifact, lid: str) -> str:
    """CloudFormation's generated name: stack and logical id, lower case, and a unique suffix."""
    digest = hashlib.sha256(f"{stack.name}/{lid}".encode()).hexdigest()[:12]
    return f"{stack.name}-{lid}"[:50].lower().rstrip("-") + f"-{digest}"


class AuditResources:
    client: Callable[[str, str], Any]
    account: str

    # --- S3 ---------------------------------------------------------------------------------
    def _create_aws_s3_bucket(self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment) -> Created:
        name = p.get("BucketName") or _bucket_name(stack, lid)
        s3 = self.client("s3", stack.region)
        where = (
            {} if stack.region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": stack.region}}
        )
        s3.create_bucket(Bucket=name, **where)
        self._configure_bucket(s3, name, p)
        arn = f"arn:aws:s3:::{name}"
        return name, {"Arn": arn, "DomainName": f"{name}.s3.amazonaws.com"}

    def _configure_bucket(self, s3: Any, name: str, p: dict[str, Any]) -> None:
        if p.get("BucketEncryption"):
            s3.put_bucket_encryption(
                Bucket=name,
                ServerSideEncryptionConfiguration={
                    "Rules": [_encryption_rule(r) for r in p["BucketEncryption"]["ServerSideEncryptionConfiguration"]]
                },
            )
        if p.get("VersioningConfiguration"):
            s3.put_bucket_versioning(
                Bucket=name, VersioningConfiguration={"Status": p["VersioningConfiguration"]["Status"]}
            )
        if p.get("PublicAccessBlockConfiguration"):
            s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=p["PublicAccessBlockConfiguration"])
        if p.get("OwnershipControls"):
            s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=p["OwnershipControls"])
        if p.get("LifecycleConfiguration"):
            s3.put_bucket_lifecycle_configuration(
                Bucket=name,
                LifecycleConfiguration={"Rules": [_lifecycle_rule(r) for r in p["LifecycleConfiguration"]["Rules"]]},
            )

    def _update_aws_s3_bucket(
        self, stack: StackArtifact, lid: str, previous: DeployedResource, p: dict[str, Any], d: Deployment
    ) -> tuple[str, dict[str, str], str]:
        self._configure_bucket(self.client("s3", stack.region), previous.physical_id, p)
        return previous.physical_id, previous.attributes, "bucket settings applied again"

    def _delete_aws_s3_bucket(self, stack: DeployedStack, resource: DeployedResource, d: Deployment) -> str:
        self.client("s3", stack.region).delete_bucket(Bucket=resource.physical_id)
        return f"bucket {resource.physical_id} deleted"

    def _create_aws_s3_bucketpolicy(self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment) -> Created:
        self.client("s3", stack.region).put_bucket_policy(Bucket=p["Bucket"], Policy=json.dumps(p["PolicyDocument"]))
        return p["Bucket"], {}

    def _delete_aws_s3_bucketpolicy(self, stack: DeployedStack, resource: DeployedResource, d: Deployment) -> str:
        s3 = self.client("s3", stack.region)
        with contextlib.suppress(s3.exceptions.NoSuchBucket):
            s3.delete_bucket_policy(Bucket=resource.physical_id)
        return "bucket policy removed"

    # --- CloudTrail ---------------------------------------------------------------------------
    def _create_aws_cloudtrail_trail(self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment) -> Created:
        trail = self.client("cloudtrail", stack.region)
        name = p.get("TrailName") or f"{stack.name}-{lid}"
        arn = trail.create_trail(Name=name, **_trail_settings(p))["TrailARN"]
        self._trail_selectors_and_logging(trail, name, p)
        return name, {"Arn": arn}

    def _update_aws_cloudtrail_trail(
        self, stack: StackArtifact, lid: str, previous: DeployedResource, p: dict[str, Any], d: Deployment
    ) -> tuple[str, dict[str, str], str]:
        trail = self.client("cloudtrail", stack.region)
        trail.update_trail(Name=previous.physical_id, **_trail_settings(p))
        self._trail_selectors_and_logging(trail, previous.physical_id, p)
        return previous.physical_id, previous.attributes, "trail settings applied again"

    @staticmethod
    def _trail_selectors_and_logging(trail: Any, name: str, p: dict[str, Any]) -> None:
        if p.get("EventSelectors"):
            selectors = [
                {k: (s[k] is True or s[k] == "true") if k == "IncludeManagementEvents" else s[k] for k in s}
                for s in p["EventSelectors"]
            ]
            trail.put_event_selectors(TrailName=name, EventSelectors=selectors)
        if p.get("IsLogging") in (True, "true"):
            trail.start_logging(Name=name)
        else:
            trail.stop_logging(Name=name)

    def _delete_aws_cloudtrail_trail(self, stack: DeployedStack, resource: DeployedResource, d: Deployment) -> str:
        self.client("cloudtrail", stack.region).delete_trail(Name=resource.physical_id)
        return f"trail {resource.physical_id} deleted"

    # --- EventBridge (put_rule and put_targets are upserts: a change applies them again) -------
    def _create_aws_events_rule(self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment) -> Created:
        events = self.client("events", stack.region)
        name = p.get("Name") or f"{stack.name}-{lid}"[:64]
        kwargs = {"Name": name, "State": p.get("State", "ENABLED"), "Description": p.get("Description", "")}
        if "EventPattern" in p:
            kwargs["EventPattern"] = json.dumps(p["EventPattern"])
        arn = events.put_rule(**kwargs)["RuleArn"]
        old = [t["Id"] for t in events.list_targets_by_rule(Rule=name).get("Targets", [])]
        if old:
            events.remove_targets(Rule=name, Ids=old)
        if p.get("Targets"):
            events.put_targets(Rule=name, Targets=[{"Id": t["Id"], "Arn": t["Arn"]} for t in p["Targets"]])
        return name, {"Arn": arn}

    def _delete_aws_events_rule(self, stack: DeployedStack, resource: DeployedResource, d: Deployment) -> str:
        events = self.client("events", stack.region)
        ids = [t["Id"] for t in events.list_targets_by_rule(Rule=resource.physical_id).get("Targets", [])]
        if ids:
            events.remove_targets(Rule=resource.physical_id, Ids=ids)
        events.delete_rule(Name=resource.physical_id)
        return f"rule {resource.physical_id} deleted"


def _trail_settings(p: dict[str, Any]) -> dict[str, Any]:
    flags = ("IsMultiRegionTrail", "EnableLogFileValidation", "IncludeGlobalServiceEvents")
    out: dict[str, Any] = {"S3BucketName": p["S3BucketName"]}
    out.update({k: p[k] in (True, "true") for k in flags if k in p})
    if p.get("KMSKeyId"):
        out["KmsKeyId"] = p["KMSKeyId"]
    return out


def _encryption_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A CloudFormation encryption rule in the S3 API's shape."""
    out: dict[str, Any] = {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
    if "BucketKeyEnabled" in rule:
        out["BucketKeyEnabled"] = rule["BucketKeyEnabled"] in (True, "true")
    return out


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A CloudFormation lifecycle rule in the S3 API's shape."""
    out: dict[str, Any] = {
        "ID": rule.get("Id", "rule"),
        "Status": rule.get("Status", "Enabled"),
        "Filter": {"Prefix": ""},
    }
    if "ExpirationInDays" in rule:
        out["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "NoncurrentVersionExpiration" in rule:
        out["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])
        }
    if "Transitions" in rule:
        out["Transitions"] = [
            {"Days": int(t["TransitionInDays"]), "StorageClass": t["StorageClass"]} for t in rule["Transitions"]
        ]
    if "AbortIncompleteMultipartUpload" in rule:
        days = int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
        out["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": days}
    return out
