"""The policy review with tenants (issue 17, item 6), for two tenant configurations: per tenant and
region, who can decrypt and who can generate data keys (a tenant-access role, as a session tagged
with that tenant, with that tenant's context) and where the tenant's key does not exist; a role
edited to cross tenants shows in it; without tenants the review has no tenants section."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cloud_assembly.reader import load_assembly
from lambda_src.record_crypto.settings import TENANT_KEY
from review.report import build_review, render_markdown
from stacks.config import ToolkitConfig, cdk_json_context, load_config
from stacks.synthesize import synthesize
from tests.infra.test_tenant_role_contracts import CONFIGURATIONS

READER, WRITER = "the reader's tenant-access role", "the writer's tenant-access role"
FINDER = "the finder's tenant-access role"  # with beacon fields (issue 21)


def _context(name: str) -> dict[str, Any]:
    return {f"mrk-toolkit:{k}": json.dumps(v) if not isinstance(v, str) else v for k, v in CONFIGURATIONS[name].items()}


@pytest.fixture(scope="module", params=sorted(CONFIGURATIONS))
def synthesized(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ToolkitConfig]:
    context = _context(request.param)
    out = synthesize(context, str(tmp_path_factory.mktemp(f"cdk-out-{request.param}")))
    return out, load_config({**cdk_json_context(), **context})


def test_each_tenant_and_region_names_who_decrypts_and_generates_and_where_no_key_is(
    synthesized: tuple[Path, ToolkitConfig],
) -> None:
    out, config = synthesized
    review = build_review(load_assembly(out))
    entries = {(e["tenant"], e["region"]): e for e in review["tenants"]}
    assert set(entries) == {(t.tenant_id, r) for t in config.tenants for r in config.regions}
    for tenant in config.tenants:
        t = tenant.tenant_id
        for region in config.regions:
            entry = entries[(t, region)]
            if region not in tenant.regions:
                assert entry["key"] is None and entry["decrypt"] == entry["generate_data_key"] == [], entry
                continue
            assert entry["key"].startswith(f"arn:aws:kms:{region}:") and f"/Tenant-{t}/Key>" in entry["key"]
            decrypters = [FINDER, READER] if config.beacon_fields else [READER]
            for use, titles in (("decrypt", decrypters), ("generate_data_key", [WRITER])):
                # one principal per function, and only as this tenant's session with this tenant's context
                assert [p["principal"].split(f" ({region}) ")[0] for p in entry[use]] == titles, entry[use]
                for only in entry[use]:
                    assert only["carries"].startswith(f"a session tagged {TENANT_KEY}={t}; encryption context ")
                    assert only["carries"].endswith(f"{TENANT_KEY}={t}")
    markdown = render_markdown(review)
    assert "### Tenants: who can decrypt and generate data keys, per tenant and region" in markdown
    missing = [(t.tenant_id, r) for t in config.tenants for r in config.regions if r not in t.regions]
    for t, r in missing:
        assert f"| `{t}` | `{r}` | **no key here**: its records cannot be decrypted | — | — |" in markdown
    assert any(line.startswith(f"tenant {missing[0][0]} {missing[0][1]}: no key") for line in review["facts"])


def test_a_tenant_role_edited_to_cross_tenants_shows_in_the_review(
    synthesized: tuple[Path, ToolkitConfig], tmp_path: Path
) -> None:
    out, config = synthesized
    region = next(r for r in config.regions if sum(r in t.regions for t in config.tenants) > 1)
    tenant, other = [t.tenant_id for t in config.tenants if region in t.regions][:2]
    edited = tmp_path / "cdk.out"
    edited.mkdir()
    for path in out.iterdir():
        if path.is_file():
            (edited / path.name).write_bytes(path.read_bytes())
    functions = edited / f"{config.stack_prefix}-Functions-{region}.template.json"
    template = json.loads(functions.read_text())
    for lid, resource in template["Resources"].items():
        if lid.startswith("RecordsReaderTenantAccessPolicy"):
            for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
                for key in (f"aws:ResourceTag/{TENANT_KEY}", f"kms:EncryptionContext:{TENANT_KEY}"):
                    del statement["Condition"]["StringEquals"][key]
    functions.write_text(json.dumps(template))
    entries = {(e["tenant"], e["region"]): e for e in build_review(load_assembly(edited))["tenants"]}
    carried = {r["carries"] for r in entries[(other, region)]["decrypt"]}
    assert any(c.startswith(f"a session tagged {TENANT_KEY}={tenant}; ") and c.endswith(f"={other}") for c in carried)


def test_without_tenants_the_review_has_no_tenants_section(tmp_path: Path) -> None:
    review = build_review(load_assembly(synthesize({}, str(tmp_path / "cdk.out"))))
    assert "tenants" not in review
    assert "### Tenants" not in render_markdown(review)


def test_a_tenant_keys_matrix_asks_the_tenant_roles_as_a_session_of_its_tenant(
    synthesized: tuple[Path, ToolkitConfig],
) -> None:
    out, config = synthesized
    review = build_review(load_assembly(out))
    tenant = config.tenants[0]
    for region in review["regions"]:
        (block,) = [b for b in region["matrix"] if b["resource"].endswith(f"/tenant/{tenant.tenant_id}")] or [None]
        if block is None:
            assert region["region"] not in tenant.regions
            continue
        session = f", as a session tagged {TENANT_KEY}={tenant.tenant_id}"
        rows = {r["principal"]: r["cells"] for r in block["rows"] if r["principal"].endswith(session)}
        # The matrix labels the finder's roles by their construct path (MrkToolkit-Functions-<region>/...).
        where = (f" ({region['region']}) ", f"-Functions-{region['region']}/")
        here = {p: c for p, c in rows.items() if any(w in p for w in where)}
        # the writer's and the reader's (and with beacons the finder's) tenant-access roles of the region
        assert len(here) == (3 if config.beacon_fields else 2), list(rows)
        for principal, cells in here.items():
            column = "Decrypt" if "/Reader/" in principal or "/Finder/" in principal else "GenerateDataKey"
            assert cells[column]["verdict"] == "allow", (principal, cells)
            assert f"kms:EncryptionContext:{TENANT_KEY} StringEquals {tenant.tenant_id}" in cells[column]["requires"]
            other = "GenerateDataKey" if column == "Decrypt" else "Decrypt"
            assert cells[other]["verdict"] == "deny"
        # Another region's tenant-access roles may not use this region's key.
        assert all(
            c["Decrypt"]["verdict"] == c["GenerateDataKey"]["verdict"] == "deny"
            for p, c in rows.items()
            if p not in here
        )
