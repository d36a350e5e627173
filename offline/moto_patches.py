"""The one patch the emulator needs: moto 5.2.5 cannot decrypt multi-region-key ciphertext.

moto packs the key id into a fixed 36-byte field of its (made-up) ciphertext blob, but its MRK
ids are 40 characters (``mrk-`` + a uuid4), so the id is truncated and every Decrypt of MRK
ciphertext fails with AccessDenied, even in the key's own region. The patch widens the field to
40 bytes and strips the padding on read. It changes only moto's private blob format, which
nothing outside moto reads.

``needs_moto_mrk_patch()`` tells whether the installed moto still has the bug;
tests/runtime/test_moto_patch.py fails when it no longer does, so the patch gets removed.
"""

from __future__ import annotations

import struct

_KEY_ID_FIELD = 40
_PATCHED_MARK = "_mrk_toolkit_patched"


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
