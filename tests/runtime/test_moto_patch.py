"""The one moto patch (offline/moto_patches.py) must stay needed, and must be idempotent."""

from __future__ import annotations

from offline.moto_patches import apply_moto_mrk_patch, needs_moto_mrk_patch


def test_installed_moto_still_needs_the_mrk_patch() -> None:
    assert needs_moto_mrk_patch(), (
        "moto now round-trips multi-region key ids in its ciphertext blobs: "
        "remove offline/moto_patches.py and its callers"
    )


def test_patch_round_trips_an_mrk_id_and_is_idempotent() -> None:
    from moto.kms import utils

    apply_moto_mrk_patch()
    patched = utils._serialize_ciphertext_blob
    apply_moto_mrk_patch()
    assert utils._serialize_ciphertext_blob is patched, "a second apply changes nothing"
    key_id = utils.generate_key_id(multi_region=True)
    blob = utils._serialize_ciphertext_blob(
        ciphertext=utils.Ciphertext(
            key_id=key_id, iv=b"\1" * utils.IV_LEN, ciphertext=b"abc", tag=b"\2" * utils.TAG_LEN
        )
    )
    back = utils._deserialize_ciphertext_blob(ciphertext_blob=blob)
    assert (back.key_id, back.ciphertext, back.iv) == (key_id, b"abc", b"\1" * utils.IV_LEN)
