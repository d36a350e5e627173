"""Small values derived from the config that several stacks agree on."""

from __future__ import annotations

from aws_cdk import RemovalPolicy

from cdk_constructs.beacon_key import BeaconKeyUsers
from cdk_constructs.encrypting_functions import record_encryption_context
from cdk_constructs.multi_region_key import KeyUsers
from stacks.config import ToolkitConfig


def removal_policy(config: ToolkitConfig) -> RemovalPolicy:
    return RemovalPolicy.RETAIN if config.removal_policy == "retain" else RemovalPolicy.DESTROY


def alarm_topic_name(config: ToolkitConfig) -> str:
    """Each region's alarm topic (a fixed name: users subscribe to it; the audit rules target it)."""
    return f"{config.stack_prefix}-alarms"


def writer_role_path(config: ToolkitConfig) -> str:
    return f"/{config.stack_prefix}/writer/"


def reader_role_path(config: ToolkitConfig) -> str:
    return f"/{config.stack_prefix}/reader/"


def finder_role_path(config: ToolkitConfig) -> str:
    """The finder's role (beacons only): it computes beacons and decrypts the candidates it finds, so it
    is a reader (under the reader path: the records key's policy lets it decrypt, and nothing under that
    path may create ciphertext, MrkToolkit-IAM2), and the beacon key's policy names its own path apart."""
    return f"{reader_role_path(config)}finder/"


def beacon_key_users(config: ToolkitConfig) -> BeaconKeyUsers:
    return BeaconKeyUsers(writer_role_path=writer_role_path(config), finder_role_path=finder_role_path(config))


def beacon_key_alias(config: ToolkitConfig) -> str:
    return f"{config.key_alias}-beacons"


def key_users(config: ToolkitConfig) -> KeyUsers:
    return KeyUsers(
        writer_role_path=writer_role_path(config),
        reader_role_path=reader_role_path(config),
        encryption_context=record_encryption_context(config.table_name),
    )
