"""Settings from a deployment's discovery parameters: an application needs only its region and the
deployment's name (its stack prefix, ``MrkToolkit`` by default).

Each functions stack publishes its region's values as SSM String parameters under
``/<deployment>/<region>`` (settings.py, ``discovery_path``; README "Discovery"). ``discover_settings``
reads them with ONE ``GetParametersByPath`` call (at most 10 parameters: one page) and caches the
answer per (deployment, region) for the life of the process: the values change only with a deploy.
With tenants, the region's tenant keys and (with the application roles) the tenant-access role of the
application writer and reader are among them: ``role`` picks whose; with beacon fields and the application
roles, the fields and the region's beacon key (the library then writes each record's beacons).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any, Literal

import botocore.session
from botocore.exceptions import BotoCoreError, ClientError

from record_crypto.errors import DeploymentNotDiscovered
from record_crypto.settings import (
    DATABASE_DISCOVERY_PARAMETERS,
    DEPLOYMENT_NAME,
    DISCOVERY_PARAMETERS,
    PARAM_BEACON_FIELDS,
    PARAM_BEACON_KEY_ARN,
    PARAM_DB_NAME,
    PARAM_DB_PORT,
    PARAM_DB_READER_ENDPOINT,
    PARAM_DB_READER_SECRET_ARN,
    PARAM_DB_WRITER_ENDPOINT,
    PARAM_DB_WRITER_SECRET_ARN,
    PARAM_READER_TENANT_ROLE_ARN,
    PARAM_RECORD_KEY_ARN,
    PARAM_RECORD_OPTIONS,
    PARAM_TABLE_NAME,
    PARAM_TENANT_KEYS,
    PARAM_WRITER_TENANT_ROLE_ARN,
    REGION_NAME,
    STORE_AURORA_POSTGRESQL,
    CacheSettings,
    ConfigurationError,
    DatabaseSettings,
    Settings,
    discovery_path,
    parse_beacon_fields,
)

_cache: dict[tuple[str, str], dict[str, str]] = {}
_cache_lock = threading.Lock()


def clear_discovery_cache() -> None:
    """Forget every discovered deployment (after a deploy that changed it, or in tests)."""
    with _cache_lock:
        _cache.clear()


def discovered_parameters(
    *, region: str, deployment: str, botocore_session: botocore.session.Session | None = None
) -> dict[str, str]:
    """The region's discovery parameters, name (below the path) -> value; one GetParametersByPath call
    the first time, the cached answer after."""
    _check_names(region, deployment)
    key = (deployment, region)
    with _cache_lock:
        if key in _cache:
            return dict(_cache[key])
    values = _read(region, deployment, botocore_session or botocore.session.get_session())
    with _cache_lock:
        _cache[key] = values
    return dict(values)


def discover_settings(
    *,
    region: str,
    deployment: str,
    role: Literal["writer", "reader"] = "writer",
    database_role: Literal["writer", "reader"] | None = None,
    cache: CacheSettings | None = None,
    botocore_session: botocore.session.Session | None = None,
) -> Settings:
    """Validated settings of the deployment's region, as its functions use them.

    ``role``: whose settings, the writer's or the reader's: with tenants, the tenant-access role of the
    application writer or reader (assumed per tenant, with the session tag); on the Aurora store, the
    writer's endpoint and secret (the region's cluster endpoint) or the reader's (its reader endpoint).
    ``database_role``: the Aurora store's choice alone (default: ``role``). ``cache``: the data-key cache
    (default off). Raises ``DeploymentNotDiscovered`` (names the path and the fix).
    """
    path = discovery_path(deployment, region)
    values = discovered_parameters(region=region, deployment=deployment, botocore_session=botocore_session)
    options = _options(values[PARAM_RECORD_OPTIONS], path)
    database_role = database_role or role
    database = _database(values, path, database_role) if options["store"] == STORE_AURORA_POSTGRESQL else None
    tenant_role = values.get(PARAM_WRITER_TENANT_ROLE_ARN if role == "writer" else PARAM_READER_TENANT_ROLE_ARN)
    try:
        return Settings.create(
            table_name=values[PARAM_TABLE_NAME],
            mrk_arn=values[PARAM_RECORD_KEY_ARN],
            region=region,
            sensitive_fields=options["sensitive_fields"],
            unsigned_attributes=options["unsigned_attributes"],
            algorithm_suite=options["algorithm_suite"],
            max_record_bytes=options["max_record_bytes"],
            cache=cache,
            database=database,
            tenant_key_ids=_tenant_key_ids(values, path),
            tenant_role_arn=tenant_role,
            beacon_fields=parse_beacon_fields(values.get(PARAM_BEACON_FIELDS, ""), tuple(options["sensitive_fields"])),
            beacon_key_arn=values.get(PARAM_BEACON_KEY_ARN),
        )
    except (ConfigurationError, TypeError, ValueError) as exc:
        raise DeploymentNotDiscovered(
            f"The discovery parameters under {path} do not make valid settings ({exc}); deploy the deployment "
            "again (its functions stacks write them)."
        ) from None


def _check_names(region: str, deployment: str) -> None:
    if not isinstance(region, str) or not REGION_NAME.match(region):
        raise DeploymentNotDiscovered(f"region: {region!r} is not an AWS region name such as us-east-2")
    if not isinstance(deployment, str) or not DEPLOYMENT_NAME.match(deployment):
        raise DeploymentNotDiscovered(
            f"deployment: {deployment!r} is not a deployment's name (its stack prefix, e.g. MrkToolkit)"
        )


def _read(region: str, deployment: str, session: botocore.session.Session) -> dict[str, str]:
    path = discovery_path(deployment, region)
    client = session.create_client("ssm", region_name=region)
    values: dict[str, str] = {}
    token: str | None = None
    try:
        while True:  # one page (at most 10 parameters are published); more only if someone added some
            page: dict[str, Any] = client.get_parameters_by_path(
                Path=path, Recursive=False, MaxResults=10, **({"NextToken": token} if token else {})
            )
            values |= {str(p["Name"]).rsplit("/", 1)[1]: str(p["Value"]) for p in page.get("Parameters", [])}
            token = page.get("NextToken")
            if not token:
                break
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        fix = (
            f"the caller's credentials need ssm:GetParametersByPath on the path "
            f'(arn:<partition>:ssm:{region}:<account>:parameter{path}; README "Discovery")'
            if code in ("AccessDeniedException", "AccessDenied")
            else "retry, or check the region's SSM endpoint"
        )
        raise DeploymentNotDiscovered(
            f"Reading the discovery parameters under {path} failed ({code}): {fix}."
        ) from None
    except BotoCoreError as exc:
        raise DeploymentNotDiscovered(f"Reading the discovery parameters under {path} failed ({exc}).") from None
    missing = [name for name in DISCOVERY_PARAMETERS if name not in values]
    if missing:
        raise DeploymentNotDiscovered(
            f"No deployment {deployment!r} in {region}: {', '.join(f'{path}/{m}' for m in missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing. Check the deployment's name (its stack prefix) and "
            f"region, and that its functions stack in {region} is deployed."
        )
    return values


def _options(raw: str, path: str) -> dict[str, Any]:
    try:
        options = json.loads(raw)
    except json.JSONDecodeError:
        options = None
    keys = {"store", "sensitive_fields", "unsigned_attributes", "algorithm_suite", "max_record_bytes"}
    if not isinstance(options, dict) or not keys <= set(options):
        raise DeploymentNotDiscovered(
            f"{path}/{PARAM_RECORD_OPTIONS} is not the toolkit's record options (a JSON object with "
            f"{', '.join(sorted(keys))}); deploy the deployment again."
        )
    return options


def _tenant_key_ids(values: Mapping[str, str], path: str) -> dict[str, str | None] | None:
    """With tenants: tenant id -> its key's id in the region, or None where it has none (the parameter holds
    the functions' TENANT_KEYS value; Settings validates it)."""
    raw = values.get(PARAM_TENANT_KEYS)
    if raw is None:
        return None
    try:
        keys = json.loads(raw)
    except json.JSONDecodeError:
        keys = None
    if not isinstance(keys, dict) or not all(isinstance(k, str) for k in keys.values()):
        raise DeploymentNotDiscovered(
            f"{path}/{PARAM_TENANT_KEYS} is not the toolkit's tenant keys (a JSON object, tenant id -> key id or "
            '""); deploy the deployment again.'
        )
    return {tenant: key_id or None for tenant, key_id in keys.items()}


def _database(values: Mapping[str, str], path: str, role: str) -> DatabaseSettings:
    missing = [name for name in DATABASE_DISCOVERY_PARAMETERS if name not in values]
    if missing:
        raise DeploymentNotDiscovered(
            f"The Aurora store's {', '.join(f'{path}/{m}' for m in missing)} missing; deploy the deployment again."
        )
    writer = role == "writer"
    try:
        port = int(values[PARAM_DB_PORT])
    except ValueError:
        raise DeploymentNotDiscovered(f"{path}/{PARAM_DB_PORT} is not a port number; deploy again.") from None
    return DatabaseSettings(
        host=values[PARAM_DB_WRITER_ENDPOINT if writer else PARAM_DB_READER_ENDPOINT],
        port=port,
        name=values[PARAM_DB_NAME],
        secret_arn=values[PARAM_DB_WRITER_SECRET_ARN if writer else PARAM_DB_READER_SECRET_ARN],
    )
