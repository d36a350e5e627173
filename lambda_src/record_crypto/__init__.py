"""Client-side (envelope) encryption of records with a KMS multi-region key.

Runs inside the writer and reader functions, and in any Python application (see the README,
"Use it from your own code"); never imports the CDK. Modules: ``settings`` (the environment
contract), ``context`` (the encryption context), ``errors`` (the error contract), ``envelope``
(the Encryption SDK), ``records`` (event validation and the item format), ``service`` (write and
read), ``discovery`` (settings from a deployment's SSM parameters), ``observability`` (logs and EMF
metrics without plaintext).

The library API, imported lazily (the CDK app imports ``settings`` without loading the rest)::

    from record_crypto import RecordService, Settings, RecordError

    service = RecordService.discover(region="us-west-1", deployment="MrkToolkit")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"  # semantic versioning; CHANGELOG.md beside pyproject.toml

if TYPE_CHECKING:  # what type checkers see; at run time __getattr__ imports on first use
    from record_crypto.discovery import clear_discovery_cache as clear_discovery_cache
    from record_crypto.discovery import discover_settings as discover_settings
    from record_crypto.errors import DeploymentNotDiscovered as DeploymentNotDiscovered
    from record_crypto.errors import RecordError as RecordError
    from record_crypto.service import ReadResult as ReadResult
    from record_crypto.service import RecordService as RecordService
    from record_crypto.service import WriteResult as WriteResult
    from record_crypto.settings import CacheSettings as CacheSettings
    from record_crypto.settings import ConfigurationError as ConfigurationError
    from record_crypto.settings import Settings as Settings

_EXPORTS = {
    "RecordService": "record_crypto.service",
    "WriteResult": "record_crypto.service",
    "ReadResult": "record_crypto.service",
    "Settings": "record_crypto.settings",
    "CacheSettings": "record_crypto.settings",
    "ConfigurationError": "record_crypto.settings",
    "RecordError": "record_crypto.errors",
    "DeploymentNotDiscovered": "record_crypto.errors",
    "discover_settings": "record_crypto.discovery",
    "clear_discovery_cache": "record_crypto.discovery",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'record_crypto' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
