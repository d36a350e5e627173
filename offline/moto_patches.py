"""The patches the emulator needs (``apply_moto_patches`` applies them all).

1. moto 5.2.5 cannot decrypt multi-region-key ciphertext.

moto packs the key id into a fixed 36-byte field of its (made-up) ciphertext blob, but its MRK
ids are 40 characters (``mrk-`` + a uuid4), so the id is truncated and every Decrypt of MRK
ciphertext fails with AccessDenied, even in the key's own region. The patch widens the field to
40 bytes and strips the padding on read. It changes only moto's private blob format, which
nothing outside moto reads.

``needs_moto_mrk_patch()`` tells whether the installed moto still has the bug;
tests/runtime/test_moto_patch.py fails when it no longer does, so the patch gets removed.

2. moto's RotateKeyOnDemand only records a rotation: the key material stays, so no test of
rotation could fail. ``apply_moto_rotation_patch`` rotates the material of the primary and of
every replica (as KMS does for a multi-region key) and keeps the earlier materials for decrypt.

3. moto's ReplicateKey gives the replica the primary's own aliases dict (a shallow copy), so
deleting the alias in a replica's region (its keys stack deleted) deletes the primary's alias too.
``apply_moto_replica_alias_patch`` gives each replica its own (empty) aliases, as in KMS.
"""

from __future__ import annotations

import os
import struct

_KEY_ID_FIELD = 40
_PATCHED_MARK = "_mrk_toolkit_patched"


def apply_moto_patches() -> None:
    """All of them, in this process (idempotent)."""
    apply_moto_mrk_patch()
    apply_moto_rotation_patch()
    apply_moto_replica_alias_patch()


def needs_moto_mrk_patch() -> bool:
    """True if moto's *original* blob format loses part of a multi-region key id."""
    from moto.kms import utils

    serialize = getattr(utils, "_mrk_toolkit_original_serialize", utils._serialize_ciphertext_blob)
    deserialize = getattr(utils, "_mrk_toolkit_original_deserialize", utils._deserialize_ciphertext_blob)
    key_id = utils.generate_key_id(multi_region=True)
    blob = serialize(
        utils.Ciphertext(key_id=key_id, iv=b"\0" * utils.IV_LEN, ciphertext=b"x", tag=b"\0" * utils.TAG_LEN)
    )
    try:
        return deserialize(blob).key_id != key_id
    except Exception:
        return True


def apply_moto_mrk_patch() -> None:
    """Patch moto.kms.utils in this process (idempotent; a no-op once moto is fixed)."""
    from moto.kms import utils

    if getattr(utils, _PATCHED_MARK, False) or not needs_moto_mrk_patch():
        return
    header_format = f">{_KEY_ID_FIELD}s{utils.IV_LEN}s{utils.TAG_LEN}s"
    header_len = _KEY_ID_FIELD + utils.IV_LEN + utils.TAG_LEN

    # Same signatures as moto's (it calls them with keyword arguments).
    def serialize(ciphertext):  # type: ignore[no-untyped-def]
        header = struct.pack(header_format, ciphertext.key_id.encode("utf-8"), ciphertext.iv, ciphertext.tag)
        return header + ciphertext.ciphertext

    def deserialize(ciphertext_blob):  # type: ignore[no-untyped-def]
        key_id, iv, tag = struct.unpack(header_format, ciphertext_blob[:header_len])
        return utils.Ciphertext(
            key_id=key_id.rstrip(b"\0").decode("utf-8"),
            iv=iv,
            ciphertext=ciphertext_blob[header_len:],
            tag=tag,
        )

    utils._mrk_toolkit_original_serialize = utils._serialize_ciphertext_blob  # type: ignore[attr-defined]
    utils._mrk_toolkit_original_deserialize = utils._deserialize_ciphertext_blob  # type: ignore[attr-defined]
    utils._serialize_ciphertext_blob = serialize
    utils._deserialize_ciphertext_blob = deserialize
    setattr(utils, _PATCHED_MARK, True)


# -- key rotation ---------------------------------------------------------------------------------
_ROTATION_MARK = "_mrk_toolkit_rotation"
_PREVIOUS = "_mrk_toolkit_previous_materials"


def needs_moto_rotation_patch() -> bool:
    """True if moto's RotateKeyOnDemand leaves the key material as it was (it only records the
    rotation), so that a test of rotation could not fail."""
    from moto.kms.models import KmsBackend

    original = getattr(KmsBackend, "_mrk_toolkit_original_rotate", KmsBackend.rotate_key_on_demand)
    backend = KmsBackend("us-east-1", "123456789012")
    key = backend.create_key(None, "ENCRYPT_DECRYPT", "SYMMETRIC_DEFAULT", "d", None, multi_region=True)
    before = key.key_material
    original(backend, key.id)
    return key.key_material == before


def apply_moto_rotation_patch() -> None:
    """Make rotation real in this process, as KMS does it: ``RotateKeyOnDemand`` (primary only;
    a replica is refused) gives the key new material, and every replica of a multi-region key
    the same new material; new ciphertext uses the newest material, and ciphertext made before
    still decrypts (the old materials are kept). Idempotent; a no-op once moto rotates itself.
    """
    from moto.kms import models
    from moto.kms.exceptions import InvalidCiphertextException, ValidationException

    if getattr(models, _ROTATION_MARK, False) or not needs_moto_rotation_patch():
        return
    original_rotate = models.KmsBackend.rotate_key_on_demand
    original_decrypt = models.decrypt

    def rotate(self, key_id):  # type: ignore[no-untyped-def]
        key = self.keys[self.get_key_id(key_id)]
        primary = (getattr(key, "multi_region_configuration", None) or {}).get("PrimaryKey", {}).get("Arn")
        if getattr(key, "multi_region", False) and primary != key.arn:
            raise ValidationException(f"{key.arn} is a multi-region replica key: rotate its primary key instead")
        result = original_rotate(self, key_id)
        material = os.urandom(32)
        for backend in models.kms_backends[self.account_id].values():
            same = backend.keys.get(key.id)
            if same is not None:
                setattr(same, _PREVIOUS, [same.key_material, *getattr(same, _PREVIOUS, [])])
                same.key_material = material
        return result

    def decrypt(master_keys, ciphertext_blob, encryption_context):  # type: ignore[no-untyped-def]
        try:
            return original_decrypt(master_keys, ciphertext_blob, encryption_context)
        except InvalidCiphertextException:
            key = master_keys.get(_key_id_of(ciphertext_blob))
            for material in getattr(key, _PREVIOUS, []):
                try:
                    return original_decrypt({key.id: _Material(material)}, ciphertext_blob, encryption_context)
                except InvalidCiphertextException:
                    continue
            raise

    models.KmsBackend._mrk_toolkit_original_rotate = original_rotate  # type: ignore[attr-defined]
    models.KmsBackend.rotate_key_on_demand = rotate
    models.decrypt = decrypt
    setattr(models, _ROTATION_MARK, True)


class _Material:
    """A stand-in key holding one earlier material (moto's decrypt reads only ``key_material``)."""

    def __init__(self, material: bytes) -> None:
        self.key_material = material


def _key_id_of(ciphertext_blob: bytes) -> str:
    from moto.kms import utils

    try:
        return str(utils._deserialize_ciphertext_blob(ciphertext_blob=ciphertext_blob).key_id)
    except Exception:
        return ""


# -- aliases of replicated keys -----------------------------------------------------------------
_ALIAS_MARK = "_mrk_toolkit_replica_aliases"


def needs_moto_replica_alias_patch() -> bool:
    """True if moto's ReplicateKey makes the replica share the primary's aliases (one dict), so
    deleting an alias in the replica's region deletes the primary's too. KMS aliases are per region,
    and ReplicateKey copies none."""
    from moto.kms.models import KmsBackend, kms_backends

    original = getattr(KmsBackend, "_mrk_toolkit_original_replicate", KmsBackend.replicate_key)
    account = "000000000000"
    backend = kms_backends[account]["us-east-1"]
    key = backend.create_key(None, "ENCRYPT_DECRYPT", "SYMMETRIC_DEFAULT", "probe", None, multi_region=True)
    try:
        return original(backend, key.id, "us-west-2").aliases is key.aliases
    finally:
        backend.keys.pop(key.id, None)
        kms_backends[account]["us-west-2"].keys.pop(key.id, None)


def apply_moto_replica_alias_patch() -> None:
    """A replica starts with no alias of its own, as KMS's does. Idempotent; a no-op once fixed."""
    from moto.kms import models

    if getattr(models, _ALIAS_MARK, False) or not needs_moto_replica_alias_patch():
        return
    original = models.KmsBackend.replicate_key

    def replicate_key(self, key_id, replica_region):  # type: ignore[no-untyped-def]
        replica = original(self, key_id, replica_region)
        replica.aliases = {}
        return replica

    models.KmsBackend._mrk_toolkit_original_replicate = original  # type: ignore[attr-defined]
    models.KmsBackend.replicate_key = replicate_key
    setattr(models, _ALIAS_MARK, True)
