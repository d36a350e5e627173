"""The encryption context: what binds a ciphertext to its table, its item and the schema.

The stable pairs (purpose, table, schema) are in every message, and the key and role policies
require them (``kms:EncryptionContext:*`` conditions). The item's key is bound in one of two ways:

* data-key cache **off** (default): the context also holds ``item``, so KMS and the Encryption
  SDK bind the data key to the item;
* data-key cache **on**: the context holds only the stable pairs (a per-item context would make
  every cache lookup miss), and the item's key travels inside the authenticated plaintext, where
  the reader compares it with the item it read.

Either way the reader refuses a ciphertext copied onto another item or into another table.
"""

from __future__ import annotations

from collections.abc import Mapping

from record_crypto.errors import ContextMismatch
from record_crypto.settings import ITEM_CONTEXT_KEY, TENANT_KEY

PURPOSE = "mrk-toolkit:record"
SCHEMA_VERSION = "1"
ITEM_KEY = ITEM_CONTEXT_KEY
# Keys the Encryption SDK writes itself (the signing suite adds the public verification key).
RESERVED_PREFIX = "aws-crypto-"
SDK_KEYS = frozenset({"aws-crypto-public-key"})


def expected_context(*, table: str, item_id: str | None, tenant: str | None = None) -> dict[str, str]:
    """The context the writer sends: stable pairs (with ``tenant`` when the deployment has tenants),
    plus ``item`` when ``item_id`` is given."""
    context = {"purpose": PURPOSE, "table": table, "schema": SCHEMA_VERSION}
    if tenant is not None:
        context[TENANT_KEY] = tenant
    if item_id is not None:
        context[ITEM_KEY] = item_id
    return context


def refuse_reserved_keys(context: Mapping[str, str]) -> None:
    """Callers may not set keys the Encryption SDK reserves for itself."""
    reserved = sorted(k for k in context if k.startswith(RESERVED_PREFIX))
    if reserved:
        raise ValueError(f"encryption context keys starting with '{RESERVED_PREFIX}' are reserved: {reserved}")


def check_context(actual: Mapping[str, str], *, table: str, item_id: str, tenant: str | None = None) -> None:
    """Raise ContextMismatch unless ``actual`` is a context this table's writer made for ``item_id``
    (and for ``tenant``, when given)."""
    stable = expected_context(table=table, item_id=None, tenant=tenant)
    if tenant is not None and actual.get(TENANT_KEY) != tenant:
        raise ContextMismatch(f"the ciphertext's encryption context names another tenant than {tenant!r}")
    wrong = sorted(k for k, v in stable.items() if actual.get(k) != v)
    if wrong:
        raise ContextMismatch(
            f"the ciphertext's encryption context differs from this table's in {wrong}: "
            "it was made for another table, purpose or schema version"
        )
    if ITEM_KEY in actual and actual[ITEM_KEY] != item_id:
        raise ContextMismatch("the ciphertext's encryption context names another item: it was copied onto this item")
    extra = sorted(set(actual) - set(stable) - {ITEM_KEY} - SDK_KEYS)
    if extra:
        raise ContextMismatch(f"the ciphertext's encryption context has unexpected keys {extra}")
