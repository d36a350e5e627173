"""The writer and reader functions of one region, pointed at the local key and table replica."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack, Validations, Acknowledgment
from constructs import Construct

from cdk_constructs.encrypting_functions import CryptoOptions, EncryptingFunctions, record_encryption_context
from cdk_constructs.lambda_bundle import function_code
from stacks.config import ToolkitConfig
from stacks.shared import reader_role_path, removal_policy, writer_role_path


class FunctionsStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ToolkitConfig,
        mrk_arn: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        cache = config.data_key_cache
        self.functions = EncryptingFunctions(
            self,
            "Records",
            table_name=config.table_name,
            mrk_arn=mrk_arn,
            encryption_context=record_encryption_context(config.table_name),
            writer_role_path=writer_role_path(config),
            reader_role_path=reader_role_path(config),
            crypto=CryptoOptions(
                sensitive_fields=config.sensitive_fields,
                algorithm_suite=config.algorithm_suite,
                data_key_cache=cache.enabled,
                cache_max_age_seconds=cache.max_age_seconds,
                cache_max_messages=cache.max_messages,
                cache_max_bytes=cache.max_bytes,
                cache_capacity=cache.capacity,
                max_record_bytes=config.max_record_bytes,
            ),
            code=function_code(),
            log_retention_days=config.log_retention_days,
            reserved_concurrency=config.reserved_concurrency,
            removal_policy=removal_policy(config),
        )
        for fn in (self.functions.writer, self.functions.reader):
            # Active tracing makes the Lambda service add xray:PutTraceSegments/PutTelemetryRecords
            # to the role's default policy; X-Ray has no resource-level permissions, so "*" is the
            # only possible resource. Our own statements live in AccessPolicy, never here.
            default_policy = fn.role.node.try_find_child("DefaultPolicy")
            if default_policy is not None:
                Validations.of(default_policy).acknowledge(
                    Acknowledgment(
                        id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                        reason="X-Ray tracing actions support only Resource '*'; the policy holds nothing else.",
                    )
                )
        CfnOutput(self, "WriterFunctionName", value=self.functions.writer.function.function_name)
        CfnOutput(self, "ReaderFunctionName", value=self.functions.reader.function.function_name)
