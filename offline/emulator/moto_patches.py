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

3. moto has no ``UpdatePrimaryRegion``, and its related multi-region keys share one
``MultiRegionConfiguration`` object (a replica is a shallow copy of the primary), so describing a
replica turns the primary into a "REPLICA" too. ``apply_moto_primary_region_patch`` gives each
key its own configuration and emulates ``UpdatePrimaryRegion`` as the KMS API reference describes
it (see the function's docstring).

4. moto's ReplicateKey gives the replica the primary's own aliases dict (a shallow copy), so
deleting the alias in a replica's region (its keys stack deleted) deletes the primary's alias too.
``apply_moto_replica_alias_patch`` gives each replica its own (empty) aliases, as in KMS.

5. moto loads AWS managed policies only when told to (all ~1,400 of them, for every account),
so a role that attaches one (RDS enhanced monitoring's ``AmazonRDSEnhancedMonitoringRole``)
would hold none of its permissions, and what it may do would not be what AWS decides (nor could
``python -m offline up``'s IAM user hold ``AdministratorAccess``).
``apply_moto_managed_policy_patch`` loads, on attach (to a role or a user), the one policy asked for, from moto's own
copy of AWS's documents (``aws_managed_policy`` reads one for other tools).

6. moto makes the key of a table encrypted with "the AWS managed key" (``alias/aws/dynamodb``) a
customer-managed key (DescribeKey's ``KeyManager`` is ``CUSTOMER``), so a replica without its own
key would read back as encrypted with a customer-managed key. ``apply_moto_aws_managed_key_patch``
marks that key ``AWS``-managed, as KMS reports it.

7. moto's UpdateSecretVersionStage moves the AWSCURRENT label but not the secret's default version,
so a GetSecretValue without a stage (db_setup's) still returns the value from before a rotation.
``apply_moto_secret_stage_patch`` makes the version labelled AWSCURRENT the default, as in Secrets
Manager; ``needs_moto_secret_stage_patch()`` tells whether moto still needs it.
"""

from __future__ import annotations

import os
import struct
from typing import Any

_KEY_ID_FIELD = 40
_PATCHED_MARK = "_mrk_toolkit_patched"


def apply_moto_patches() -> None:
    """All of them, in this process (idempotent)."""
    apply_moto_mrk_patch()
    apply_moto_rotation_patch()
    apply_moto_replica_alias_patch()
    apply_moto_primary_region_patch()
    apply_moto_managed_policy_patch()
    apply_moto_aws_managed_key_patch()
    apply_moto_replica_deletion_patch()
    apply_moto_key_state_patch()
    apply_moto_secret_stage_patch()


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


# -- UpdatePrimaryRegion ------------------------------------------------------------------------
_PRIMARY_REGION_MARK = "_mrk_toolkit_primary_region"


def needs_moto_primary_region_patch() -> bool:
    """True if moto itself has no UpdatePrimaryRegion (none, or only the one patched in here)."""
    from moto.kms.models import KmsBackend

    method = getattr(KmsBackend, "update_primary_region", None)
    return method is None or getattr(method, _PRIMARY_REGION_MARK, False)


def _related_keys(account: str, key_id: str) -> dict[str, Any]:
    """region -> the key with this multi-region key id in that region."""
    from moto.kms.models import kms_backends

    return {region: backend.keys[key_id] for region, backend in kms_backends[account].items() if key_id in backend.keys}


def _set_configurations(account: str, key_id: str, primary_region: str) -> None:
    """Give every related key its own MultiRegionConfiguration naming ``primary_region``'s key
    as the primary (moto's related keys share one mutable dict)."""
    keys = _related_keys(account, key_id)
    primary = keys[primary_region]
    for region, key in keys.items():
        key.multi_region_configuration = {
            "MultiRegionKeyType": "PRIMARY" if region == primary_region else "REPLICA",
            "PrimaryKey": {"Arn": primary.arn, "Region": primary_region},
            "ReplicaKeys": [{"Arn": k.arn, "Region": r} for r, k in sorted(keys.items()) if r != primary_region],
        }


def _kms_error(code: str, message: str) -> Exception:
    from moto.core.exceptions import JsonRESTError

    return JsonRESTError(code, message)


def _update_primary_region(self, key_id, primary_region):  # type: ignore[no-untyped-def]
    """KmsBackend.update_primary_region (see apply_moto_primary_region_patch): the refusals, then the move."""
    key = self.keys[self.get_key_id(key_id)]
    if not key.multi_region:
        raise _kms_error("UnsupportedOperationException", f"{key.arn} is not a multi-Region key")
    home = key.multi_region_configuration["PrimaryKey"]["Region"]
    if home != self.region_name:
        raise _kms_error(
            "UnsupportedOperationException",
            f"{key.arn} is a multi-Region replica key: call UpdatePrimaryRegion in {home}, the region of "
            "its primary key",
        )
    if not key.enabled:
        raise _kms_error("DisabledException", f"{key.arn} is disabled")
    if primary_region == self.region_name:
        return
    keys = _related_keys(self.account_id, key.id)
    replica = keys.get(primary_region)
    if replica is None:
        raise _kms_error(
            "NotFoundException",
            f"{key.id} has no replica key in {primary_region}: replicate it there first (ReplicateKey)",
        )
    if not replica.enabled:
        raise _kms_error("DisabledException", f"{replica.arn} is disabled")
    replica.key_rotation_status = key.key_rotation_status
    _set_configurations(self.account_id, key.id, primary_region)


def apply_moto_primary_region_patch() -> None:
    """``UpdatePrimaryRegion`` in this process, per the KMS API reference: called in the region of
    the CURRENT primary with ``KeyId`` = that primary and ``PrimaryRegion`` = the region of an
    existing replica; that replica becomes the primary and the old primary a replica. Key id, key
    material (and its history), key policies and aliases are unchanged; the automatic-rotation
    setting is a shared property, so the new primary takes the old one's; every related key's
    ``MultiRegionConfiguration`` names the new primary. Refused: a key that is not multi-region
    (UnsupportedOperationException), a replica named as KeyId (UnsupportedOperationException,
    saying which region holds the primary), a disabled key (DisabledException), a region without a
    replica (NotFoundException). ``PrimaryRegion`` equal to the current one changes nothing.
    Not emulated: the transient ``Updating`` key state (the change is immediate here).

    ReplicateKey is patched too, so that each replica gets its own configuration (moto's replicas
    share the primary's dict). Idempotent.
    """
    from moto.kms import models
    from moto.kms.responses import KmsResponse

    if getattr(models, _PRIMARY_REGION_MARK, False) or not needs_moto_primary_region_patch():
        return
    original_replicate = models.KmsBackend.replicate_key

    def replicate_key(self, key_id, replica_region):  # type: ignore[no-untyped-def]
        replica = original_replicate(self, key_id, replica_region)
        _set_configurations(self.account_id, replica.id, self.region_name)
        return replica

    def respond(self):  # type: ignore[no-untyped-def]
        key_id = self._get_param("KeyId")
        self._validate_cmk_id(key_id)
        self.kms_backend.update_primary_region(key_id, self._get_param("PrimaryRegion"))
        return "{}"

    setattr(_update_primary_region, _PRIMARY_REGION_MARK, True)
    models.KmsBackend.replicate_key = replicate_key
    models.KmsBackend.update_primary_region = _update_primary_region  # type: ignore[attr-defined]
    KmsResponse.update_primary_region = respond  # type: ignore[attr-defined]
    setattr(models, _PRIMARY_REGION_MARK, True)


# -- AWS managed policies -----------------------------------------------------------------------
_MANAGED_MARK = "_mrk_toolkit_managed_policies"


def _managed_policy_data(name: str) -> dict[str, Any] | None:
    """moto's record of one AWS managed policy (without parsing the other ~1,400)."""
    import json

    from moto.iam.aws_managed_policies import aws_managed_policies_data as data

    start = data.find(f'\n "{name}":')
    if start < 0:
        return None
    value, _ = json.JSONDecoder().raw_decode(data, data.index("{", start + len(name) + 4))
    return dict(value)


def aws_managed_policy(arn: str) -> dict[str, Any] | None:
    """The document of an AWS managed policy (``arn:aws:iam::aws:policy/...``), None if unknown."""
    path, _, name = arn.partition(":iam::aws:policy")[2].rpartition("/")
    record = _managed_policy_data(name)
    if record is None or record.get("Path", "/") != f"{path}/":
        return None
    return dict(record["Document"])


def apply_moto_managed_policy_patch() -> None:
    """AttachRolePolicy or AttachUserPolicy of an AWS managed policy moto has not loaded loads that one.
    Idempotent."""
    from moto.iam import models

    if getattr(models, _MANAGED_MARK, False):
        return

    def load(backend: Any, policy_arn: str) -> None:
        if policy_arn not in backend.managed_policies and ":iam::aws:policy/" in policy_arn:
            name = policy_arn.rsplit("/", 1)[-1]
            record = _managed_policy_data(name)
            if record is not None and aws_managed_policy(policy_arn) is not None:
                policy = models.AWSManagedPolicy.from_data(name, backend.account_id, backend.region_name, record)
                backend.managed_policies[policy.arn] = policy

    attach_role, attach_user = models.IAMBackend.attach_role_policy, models.IAMBackend.attach_user_policy

    def attach_role_policy(self, policy_arn, role_name):  # type: ignore[no-untyped-def]
        load(self, policy_arn)
        return attach_role(self, policy_arn, role_name)

    def attach_user_policy(self, policy_arn, user_name):  # type: ignore[no-untyped-def]
        load(self, policy_arn)
        return attach_user(self, policy_arn, user_name)

    models.IAMBackend.attach_role_policy = attach_role_policy
    models.IAMBackend.attach_user_policy = attach_user_policy
    setattr(models, _MANAGED_MARK, True)


# -- the AWS managed key of DynamoDB -------------------------------------------------------------
_AWS_MANAGED_MARK = "_mrk_toolkit_aws_managed"


def needs_moto_aws_managed_key_patch() -> bool:
    """True if moto's DynamoDB makes its default key (alias/aws/dynamodb) a customer-managed key."""
    from moto.dynamodb.models.table import Table
    from moto.kms.models import kms_backends

    original = getattr(Table, "_mrk_toolkit_original_default_key", Table._get_default_encryption_key)
    account, region = "000000000000", "eu-north-1"
    arn = original(Table.__new__(Table), account, region)
    backend = kms_backends[account][region]
    try:
        return bool(backend.describe_key(arn).key_manager == "CUSTOMER")
    finally:
        backend.delete_alias("alias/aws/dynamodb")
        backend.keys.pop(arn.rsplit("/", 1)[1], None)


def apply_moto_aws_managed_key_patch() -> None:
    """DynamoDB's default key is managed by AWS, as in KMS. Idempotent; a no-op once fixed."""
    from moto.dynamodb.models.table import Table
    from moto.kms.models import kms_backends

    if getattr(Table, _AWS_MANAGED_MARK, False) or not needs_moto_aws_managed_key_patch():
        return
    original = Table._get_default_encryption_key

    def default_key(self, account_id, region):  # type: ignore[no-untyped-def]
        arn = original(self, account_id, region)
        kms_backends[account_id][region].describe_key(arn).key_manager = "AWS"
        return arn

    Table._mrk_toolkit_original_default_key = original  # type: ignore[attr-defined]
    Table._get_default_encryption_key = default_key  # type: ignore[method-assign]
    setattr(Table, _AWS_MANAGED_MARK, True)


_REPLICA_DELETION_MARK = "_mrk_toolkit_replica_deletion"


def _schedule_key_deletion(self, key_id, pending_window_in_days):  # type: ignore[no-untyped-def]
    """KmsBackend.schedule_key_deletion as KMS does it for a multi-Region primary that still has
    replicas (scheduled or not: they exist until deleted): state PendingReplicaDeletion, no
    DeletionDate; the waiting period starts only when the last replica is deleted (KMS developer
    guide, "Deleting multi-Region keys"; ScheduleKeyDeletion API reference)."""
    from moto.kms import models

    key = self.keys[self.any_id_to_key_id(key_id)]
    replicas = [r for r in _related_keys(self.account_id, key.id) if r != self.region_name]
    primary = getattr(key, "multi_region_configuration", {}).get("MultiRegionKeyType") == "PRIMARY"
    if not (key.multi_region and primary and replicas and 7 <= pending_window_in_days <= 30):
        return models.KmsBackend._mrk_toolkit_original_schedule(self, key_id, pending_window_in_days)
    key.enabled = False
    key.key_state = "PendingReplicaDeletion"
    key.deletion_date = None
    key.pending_deletion_window_in_days = pending_window_in_days
    return None


def apply_moto_replica_deletion_patch() -> None:
    """Patch moto.kms.models in this process (idempotent): moto 5.2.5 puts a primary with replicas
    straight into PendingDeletion with a DeletionDate, as if its waiting period had started."""
    from moto.kms import models

    if getattr(models, _REPLICA_DELETION_MARK, False):
        return
    models.KmsBackend._mrk_toolkit_original_schedule = models.KmsBackend.schedule_key_deletion  # type: ignore[attr-defined]
    models.KmsBackend.schedule_key_deletion = _schedule_key_deletion
    setattr(models, _REPLICA_DELETION_MARK, True)


# -- cryptographic use of a disabled or pending-deletion key --------------------------------------
_KEY_STATE_MARK = "_mrk_toolkit_key_state"
# KMS's refusals by key state (KMS developer guide, "Key states of KMS keys": a disabled key, or one
# pending deletion or pending replica deletion, cannot be used in cryptographic operations).
_UNUSABLE = {
    "Disabled": ("DisabledException", "is disabled"),
    "PendingDeletion": ("KMSInvalidStateException", "is pending deletion"),
    "PendingReplicaDeletion": ("KMSInvalidStateException", "is pending replica deletion"),
}


def _usable(backend: Any, key_id: str) -> None:
    key = backend.keys.get(key_id)
    refusal = _UNUSABLE.get(getattr(key, "key_state", "Enabled"))
    if key is not None and refusal is not None:
        code, state = refusal
        raise _kms_error(code, f"{key.arn} {state}.")


def _encrypt(self, key_id, plaintext, encryption_context):  # type: ignore[no-untyped-def]
    _usable(self, self.any_id_to_key_id(key_id))
    return self._mrk_toolkit_state_encrypt(key_id, plaintext, encryption_context)


def _decrypt(self, ciphertext_blob, encryption_context, key_id=None):  # type: ignore[no-untyped-def]
    _usable(self, _key_id_of(ciphertext_blob))
    return self._mrk_toolkit_state_decrypt(ciphertext_blob, encryption_context, key_id)


def apply_moto_key_state_patch() -> None:
    """Patch moto.kms.models in this process (idempotent): moto 5.2.5 encrypts, decrypts and
    generates data keys with a disabled key or one pending deletion; KMS refuses them
    (DisabledException, KMSInvalidStateException). Without it an erased tenant stays readable."""
    from moto.kms import models

    if getattr(models, _KEY_STATE_MARK, False):
        return
    models.KmsBackend._mrk_toolkit_state_encrypt = models.KmsBackend.encrypt  # type: ignore[attr-defined]
    models.KmsBackend._mrk_toolkit_state_decrypt = models.KmsBackend.decrypt  # type: ignore[attr-defined]
    models.KmsBackend.encrypt = _encrypt
    models.KmsBackend.decrypt = _decrypt
    setattr(models, _KEY_STATE_MARK, True)


_SECRET_STAGE_MARK = "_mrk_toolkit_secret_stage_patched"  # noqa: S105 - a marker name


def needs_moto_secret_stage_patch() -> bool:
    """Whether the installed moto's UpdateSecretVersionStage leaves the default version behind."""
    from moto.secretsmanager.models import SecretsManagerBackend

    backend = SecretsManagerBackend("us-east-1", "000000000000")
    unpatched = getattr(
        SecretsManagerBackend, "_mrk_toolkit_update_stage", SecretsManagerBackend.update_secret_version_stage
    )
    backend.create_secret(
        name="probe",
        secret_string="old",  # noqa: S106 - a probe value
        secret_binary=None,
        description=None,
        tags=None,
        kms_key_id=None,
        client_request_token=None,
        replica_regions=[],
        force_overwrite=False,
    )
    old = backend.secrets["probe"].default_version_id
    backend.put_secret_value("probe", "new", None, "11111111-1111-1111-1111-111111111111", ["AWSPENDING"])
    unpatched(backend, "probe", "AWSCURRENT", old, "11111111-1111-1111-1111-111111111111")
    return backend.get_secret_value("probe", None, None)["SecretString"] != "new"


def apply_moto_secret_stage_patch() -> None:
    """Patch moto.secretsmanager.models in this process (idempotent); see 7. above."""
    from moto.secretsmanager import models

    if getattr(models, _SECRET_STAGE_MARK, False):
        return
    backend = models.SecretsManagerBackend
    backend._mrk_toolkit_update_stage = backend.update_secret_version_stage  # type: ignore[attr-defined]
    backend.update_secret_version_stage = _update_secret_version_stage  # type: ignore[method-assign]
    setattr(models, _SECRET_STAGE_MARK, True)


def _update_secret_version_stage(self, secret_id, version_stage, remove_from_version_id, move_to_version_id):  # type: ignore[no-untyped-def]
    answer = self._mrk_toolkit_update_stage(secret_id, version_stage, remove_from_version_id, move_to_version_id)
    secret = self.secrets[secret_id]
    current = next((v for v, d in secret.versions.items() if "AWSCURRENT" in d["version_stages"]), None)
    if current is not None and current != secret.default_version_id:
        secret.default_version_id = current
        secret.secret_string = secret.versions[current].get("secret_string")
    return answer
