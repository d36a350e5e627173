"""The account's audit trail: a multi-region CloudTrail trail of management events (KMS Decrypt and
GenerateDataKey are read-only management events, with their encryption context), log file
validation on, into an S3 bucket encrypted with a KMS key of its own.

Why a trail when ``LookupEvents`` already reads 90 days of management events per region: the
EventBridge alert rules (cdk_constructs/audit_rules.py) receive "AWS API Call via CloudTrail"
events only while a trail records them, and an auditor needs more than 90 days, in one place,
with proof that no log file was changed (the digest files of log file validation).
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudtrail as cloudtrail
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdk_constructs.key_policies import admin_principals, admin_statement

# Log files move to S3 Glacier Instant Retrieval after this many days (still readable at once,
# about a fifth of the Standard storage price); noncurrent versions are kept this long.
ARCHIVE_AFTER_DAYS = 90
NONCURRENT_VERSION_DAYS = 30


def trail_arn(region: str, trail_name: str) -> str:
    return f"arn:{Aws.PARTITION}:cloudtrail:{region}:{Aws.ACCOUNT_ID}:trail/{trail_name}"


class AuditTrail(Construct):
    """A multi-region management-events trail with log file validation.

    Props: ``trail_name`` (fixed: the key and bucket policies name the trail's ARN, with no cycle);
    ``reader_arns`` (who may decrypt the log files, through S3 only; none: the account root, that
    is the account's IAM policies decide); ``admin_arns`` (key administrators); ``retention_days``
    (log files expire after it; archived after :data:`ARCHIVE_AFTER_DAYS`); ``removal_policy``
    (bucket and key). Key policy: CloudTrail may generate data keys only for this trail
    (``aws:SourceArn`` and ``kms:EncryptionContext:aws:cloudtrail:arn``). Bucket: TLS only, public
    access blocked, versioned, object ownership enforced; CloudTrail may write only this trail's
    files under ``AWSLogs/<account>/``.
    Attributes: ``trail`` (``CfnTrail``), ``bucket``, ``key`` (``kms.CfnKey``), ``trail_arn``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        trail_name: str,
        reader_arns: Sequence[str] = (),
        admin_arns: Sequence[str] = (),
        retention_days: int = 365,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, construct_id)
        self.trail_arn = trail_arn(Stack.of(self).region, trail_name)
        self.key = self._key(trail_name, reader_arns, admin_arns)
        self.key.apply_removal_policy(removal_policy)
        self.bucket = self._bucket(retention_days, removal_policy)
        self.trail = cloudtrail.CfnTrail(
            self,
            "Trail",
            trail_name=trail_name,
            is_logging=True,
            s3_bucket_name=self.bucket.bucket_name,
            is_multi_region_trail=True,
            include_global_service_events=True,
            enable_log_file_validation=True,
            kms_key_id=self.key.attr_arn,
            event_selectors=[
                cloudtrail.CfnTrail.EventSelectorProperty(include_management_events=True, read_write_type="All")
            ],
        )
        assert self.bucket.policy is not None
        self.trail.node.add_dependency(self.bucket.policy)

    def _key(self, trail_name: str, reader_arns: Sequence[str], admin_arns: Sequence[str]) -> kms.CfnKey:
        for_this_trail = {"StringEquals": {"aws:SourceArn": self.trail_arn}}
        readers = [iam.ArnPrincipal(a) for a in reader_arns] or admin_principals(())
        return kms.CfnKey(
            self,
            "Key",
            description=f"Encrypts the log files of the audit trail {trail_name}",
            enable_key_rotation=True,
            key_spec="SYMMETRIC_DEFAULT",
            key_usage="ENCRYPT_DECRYPT",
            pending_window_in_days=30,
            key_policy=iam.PolicyDocument(
                statements=[
                    admin_statement(admin_arns),
                    iam.PolicyStatement(
                        sid="CloudTrailEncryptsThisTrail",
                        principals=[iam.ServicePrincipal("cloudtrail.amazonaws.com")],
                        actions=["kms:GenerateDataKey*"],
                        resources=["*"],
                        conditions={
                            "StringEquals": {
                                **for_this_trail["StringEquals"],
                                "kms:EncryptionContext:aws:cloudtrail:arn": self.trail_arn,
                            }
                        },
                    ),
                    iam.PolicyStatement(
                        sid="CloudTrailDescribesKey",
                        principals=[iam.ServicePrincipal("cloudtrail.amazonaws.com")],
                        actions=["kms:DescribeKey"],
                        resources=["*"],
                        conditions=for_this_trail,
                    ),
                    iam.PolicyStatement(
                        sid="ReadersDecryptLogFilesThroughS3",
                        principals=readers,
                        actions=["kms:Decrypt"],
                        resources=["*"],
                        conditions={
                            "StringEquals": {
                                "kms:CallerAccount": Aws.ACCOUNT_ID,
                                "kms:ViaService": f"s3.{Stack.of(self).region}.amazonaws.com",
                                "kms:EncryptionContext:aws:cloudtrail:arn": self.trail_arn,
                            }
                        },
                    ),
                ]
            ),
        )

    def _bucket(self, retention_days: int, removal_policy: RemovalPolicy) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=kms.Key.from_key_arn(self, "ImportedKey", self.key.attr_arn),
            bucket_key_enabled=True,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            removal_policy=removal_policy,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ArchiveThenExpire",
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                            transition_after=Duration.days(ARCHIVE_AFTER_DAYS),
                        )
                    ],
                    expiration=Duration.days(retention_days),
                    noncurrent_version_expiration=Duration.days(NONCURRENT_VERSION_DAYS),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ],
        )
        from_this_trail = {"StringEquals": {"aws:SourceArn": self.trail_arn}}
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudTrailAclCheck",
                principals=[iam.ServicePrincipal("cloudtrail.amazonaws.com")],
                actions=["s3:GetBucketAcl"],
                resources=[bucket.bucket_arn],
                conditions=from_this_trail,
            )
        )
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudTrailWritesThisTrail",
                principals=[iam.ServicePrincipal("cloudtrail.amazonaws.com")],
                actions=["s3:PutObject"],
                resources=[bucket.arn_for_objects(f"AWSLogs/{Aws.ACCOUNT_ID}/*")],
                conditions={
                    "StringEquals": {
                        **from_this_trail["StringEquals"],
                        "s3:x-amz-acl": "bucket-owner-full-control",
                    }
                },
            )
        )
        return bucket
