"""What an approver looks at first: the findings that open the review.

``findings(review, assembly_dir)`` condenses the review (report.py ``build_review``) into who may
decrypt records where, the paths by which a key administrator could give itself use of a key, and
every acknowledged compliance finding with its reason (from the assembly's
``validation-report.json``, which cdk-nag's packs write at synth). ``facts(review)`` flattens what
a reviewer approves into sorted lines, and ``changes(previous, review)`` diffs them against a
previous report's JSON. ``findings_md`` and ``reading_key_md`` render the opening of the page.

Other sections of the summary slot in by adding a renderer to ``SUMMARY_SECTIONS``: each takes the
review and returns Markdown lines (none when it has nothing); review/tenants.py's is one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from review.assembly_view import ACCOUNT
from review.beacons import beacon_facts, beacons_md
from review.tenants import tenant_facts, tenants_md

DENY = "deny"
RECORDS_KEY = "multi-region key"  # resource_kind prefix of the records key (primary or replica)
VALIDATION_REPORT = "validation-report.json"
MAX_CHANGES = 40  # changed lines shown in the summary (the JSON holds them all)


# -- the findings (JSON) ---------------------------------------------------------------------------
def findings(review: Mapping[str, Any], assembly_dir: Path, accounts: Sequence[str] = ()) -> dict[str, Any]:
    """The findings of ``review``; ``accounts``: the account ids the assembly names, shown as ``<account>``."""
    return {
        "decrypt": _decrypt(review),
        "self_grant": _self_grant(review),
        "acknowledged": acknowledged(assembly_dir, accounts),
    }


def _decrypt(review: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Who may kms:Decrypt with the records key, per region (an allow, or "if IAM allows")."""
    out = []
    for region in review["regions"]:
        for block in region["matrix"]:
            if not block["resource_kind"].startswith(RECORDS_KEY):
                continue
            for row in block["rows"]:
                cell = row["cells"].get("Decrypt", {"verdict": DENY})
                if cell["verdict"] != DENY:
                    out.append(
                        {
                            "region": region["region"],
                            "key": block["resource"],
                            "principal": row["principal"],
                            "verdict": cell["verdict"],
                            "requires": list(cell.get("requires", [])),
                        }
                    )
    return out


def _self_grant(review: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Principals denied a key's use as the policies stand, but allowed an action that grants it."""
    out = []
    for region in review["regions"]:
        for block in region["matrix"]:
            for row in block["rows"]:
                gains = sorted(col for col, cell in row["cells"].items() if cell.get("self_grant"))
                if gains:
                    via = sorted({a for col in gains for a in row["cells"][col]["self_grant"]})
                    out.append(
                        {
                            "region": region["region"],
                            "key": block["resource"],
                            "kind": block["resource_kind"],
                            "principal": row["principal"],
                            "gains": gains,
                            "via": via,
                        }
                    )
    return out


def acknowledged(assembly_dir: Path, accounts: Sequence[str] = ()) -> list[dict[str, Any]] | None:
    """Every acknowledged finding of the compliance packs, one entry per rule and reason with the
    resources it applies to; None when the assembly holds no validation report."""
    path = Path(assembly_dir) / VALIDATION_REPORT
    if not path.is_file():
        return None
    text = path.read_text()
    for account in accounts:
        text = text.replace(account, ACCOUNT)
    report = json.loads(text)
    grouped: dict[tuple[str, str], set[str]] = {}
    for plugin in report.get("pluginReports", []):
        for finding in plugin.get("suppressedViolations", []):
            rule = str(finding.get("acknowledgedId") or finding.get("ruleName"))
            at = {str(c.get("constructPath", "")).removesuffix("/Resource") for c in finding["violatingConstructs"]}
            grouped.setdefault((rule, str(finding.get("reason", ""))), set()).update(at)
    return [{"rule": rule, "reason": reason, "resources": sorted(at)} for (rule, reason), at in sorted(grouped.items())]


# -- the diff against a previous report -------------------------------------------------------------
def facts(review: Mapping[str, Any]) -> list[str]:
    """What a reviewer approves, one sorted line each: the stacks, every access that is not a plain
    deny (with what the request must carry), every self-grant path, every acknowledgement."""
    lines = {f"stack {s['name']} ({s['region']})" for s in review["stacks"]}
    for region in review["regions"]:
        for block in region["matrix"]:
            for row in block["rows"]:
                for column, cell in row["cells"].items():
                    if cell["verdict"] == DENY and not cell.get("self_grant"):
                        continue
                    what = cell["verdict"] + (
                        f", can self-grant via {', '.join(cell['self_grant'])}" if cell.get("self_grant") else ""
                    )
                    carry = "; ".join(cell.get("requires", []))
                    when = f" when {carry}" if carry else ""
                    lines.add(f"{region['region']} {block['resource']}: {row['principal']} {column} {what}{when}")
    for ack in review.get("findings", {}).get("acknowledged") or []:
        lines |= {f"acknowledged {ack['rule']} on {r}: {ack['reason']}" for r in ack["resources"]}
    return sorted(lines | tenant_facts(review) | beacon_facts(review))


def changes(previous: Mapping[str, Any] | None, review: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The facts added and removed since ``previous`` (a report's JSON), named by ``source``."""
    if previous is None:
        return {"previous": None}
    before, now = set(previous.get("facts") or facts(previous)), set(review["facts"])
    return {"previous": source, "added": sorted(now - before), "removed": sorted(before - now)}


def load_previous(path: Path) -> dict[str, Any] | None:
    """A previous report's JSON, or None if there is none (a first run)."""
    return json.loads(path.read_text()) if path.is_file() else None


# -- Markdown ---------------------------------------------------------------------------------------
def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


VERDICTS = {"allow": "allow", "if-iam": "if IAM allows"}
CONTEXT_KEY = "kms:EncryptionContext:"


def _carries(requires: Sequence[str]) -> str:
    """What a request must carry, the encryption-context pairs shortened to ``key=value``."""
    pairs, other = [], []
    for condition in requires:
        parts = condition.split(" ", 2)
        if len(parts) == 3 and parts[0].startswith(CONTEXT_KEY) and parts[1] == "StringEquals":
            pairs.append(f"{parts[0].removeprefix(CONTEXT_KEY)}={parts[2]}")
        else:
            other.append(condition)
    text = [f"encryption context {', '.join(pairs)}"] if pairs else []
    return "; ".join(text + other) or "—"


def _decrypt_md(review: Mapping[str, Any]) -> list[str]:
    rows = review["findings"]["decrypt"]
    out = ["**Who can decrypt records, where** (`kms:Decrypt` with the records key):", ""]
    if not rows:
        return [*out, "Nobody: no principal may decrypt with the records key in any region.", ""]
    out += ["| Region | Who | Verdict | Only when the request carries |", "|---|---|---|---|"]
    out += [
        f"| `{r['region']}` | {_md(r['principal'])} | {VERDICTS.get(r['verdict'], r['verdict'])} "
        f"| {_md(_carries(r['requires']))} |"
        for r in rows
    ]
    return [*out, ""]


def _self_grant_md(review: Mapping[str, Any]) -> list[str]:
    """One line per principal: what it could give itself, on which keys, by which calls."""
    rows = review["findings"]["self_grant"]
    out = ["**Paths by which an administrator could grant itself use** (denied as the policies stand):", ""]
    if not rows:
        return [*out, "None: no principal may change a key's policy, grants or replicas.", ""]
    by_principal: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        by_principal.setdefault(r["principal"], []).append(r)
    for who, entries in sorted(by_principal.items()):
        via = sorted({a for e in entries for a in e["via"]})
        gains = sorted({g for e in entries for g in e["gains"]})
        records = sorted({e["region"] for e in entries if e["kind"].startswith(RECORDS_KEY)})
        others = len({(e["key"], e["region"]) for e in entries if not e["kind"].startswith(RECORDS_KEY)})
        where = [f"the records key in {', '.join(records)}"] if records else []
        where += [f"{others} other key(s) of the stacks"] if others else []
        out.append(
            f"- {_md(who)}: {', '.join(gains)} on {' and '.join(where)}, by calling "
            f"{', '.join(f'`{a}`' for a in via)} (alarm on these calls in CloudTrail)"
        )
    return [*out, ""]


def _acknowledged_md(review: Mapping[str, Any]) -> list[str]:
    acks = review["findings"]["acknowledged"]
    if acks is None:
        return [
            "**Acknowledged compliance findings**: the assembly has no validation report (synthesized "
            "without the compliance packs).",
            "",
        ]
    out = [f"**Acknowledged compliance findings** ({len(acks)}; any other finding fails synth):", ""]
    out += ["| Finding | On | Reason |", "|---|---|---|"]
    out += [f"| `{_md(a['rule'])}` | {_md(_where(a['resources']))} | {_md(a['reason'])} |" for a in acks]
    return [*out, ""]


def _where(paths: Sequence[str]) -> str:
    """Construct paths grouped: the same constructs in several stacks are named once, with the stacks."""
    by_stack: dict[str, list[str]] = {}
    for path in paths:
        stack, _, rest = path.partition("/")
        by_stack.setdefault(stack, []).append(rest)
    groups: dict[tuple[str, ...], list[str]] = {}
    for stack, rests in by_stack.items():
        groups.setdefault(tuple(sorted(rests)), []).append(stack)
    return "; ".join(
        f"{', '.join(f'`{r}`' for r in rests)} in {', '.join(f'`{s}`' for s in sorted(stacks))}"
        for rests, stacks in sorted(groups.items())
    )


def _changes_md(review: Mapping[str, Any]) -> list[str]:
    diff = review.get("changes") or {"previous": None}
    if diff["previous"] is None:
        return ["**Since the previous report**: no previous report to compare with (first run).", ""]
    added, removed = diff["added"], diff["removed"]
    if not added and not removed:
        return [f"**Since the previous report** (`{_md(diff['previous'])}`): nothing changed.", ""]
    out = [
        f"**Since the previous report** (`{_md(diff['previous'])}`): {len(added)} added, {len(removed)} removed:",
        "",
    ]
    shown = [f"- added: {_md(line)}" for line in added] + [f"- removed: {_md(line)}" for line in removed]
    # Access gained or lost first: a new principal column adds a "deny" line to every key of the region,
    # which would otherwise push the one grant that matters past the lines shown.
    shown.sort(key=lambda line: " deny" in line)
    out += shown[:MAX_CHANGES]
    if len(shown) > MAX_CHANGES:
        out.append(f"- ... and {len(shown) - MAX_CHANGES} more (the JSON's `changes` lists them all)")
    return [*out, ""]


SUMMARY_SECTIONS: list[Callable[[Mapping[str, Any]], list[str]]] = [
    _changes_md,
    _decrypt_md,
    tenants_md,
    beacons_md,
    _self_grant_md,
    _acknowledged_md,
]


def findings_md(review: Mapping[str, Any]) -> list[str]:
    out = ["## Findings", ""]
    for section in SUMMARY_SECTIONS:
        out += section(review)
    return out


def reading_key_md(rows: Sequence[tuple[str, str]]) -> list[str]:
    """The key to reading the matrices: one short row per term."""
    return ["## How to read it", "", "| Term | Means |", "|---|---|", *(f"| {t} | {_md(m)} |" for t, m in rows), ""]
