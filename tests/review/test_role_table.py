"""The README's table of what each role may do is generated from the contracts
(cloud_assembly/contracts.py) and says all of them; the committed README is up to date."""

from __future__ import annotations

from pathlib import Path

from cloud_assembly.contracts import CONTRACTS, markdown_table
from review.readme import CONTRACTS_END, CONTRACTS_START, GENERATED, with_contracts

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_committed_readme_shows_the_contracts_as_written() -> None:
    text = README.read_text()
    assert CONTRACTS_START in text and CONTRACTS_END in text, "README.md lost the role contracts markers"
    assert with_contracts(text) == text, "README.md's role table is stale: run make diagram"


def test_the_table_says_every_grant_of_every_contract() -> None:
    sections: dict[str, list[str]] = {}
    for line in markdown_table().splitlines()[2:]:
        if not line.startswith("|  |"):
            title = line.split("**")[1]
        sections.setdefault(title, []).append(line)
    assert list(sections) == [c.title for c in CONTRACTS]
    for contract in CONTRACTS:
        assert f"**{contract.title}**: {contract.purpose}" in sections[contract.title][0]
        for grant in contract.grants:
            rows = [line for line in sections[contract.title] if grant.on.text in line and grant.why in line]
            assert any(
                all(f"`{a}`" in row for a in grant.actions) and (grant.when.text or "any request") in row
                for row in rows
            ), (contract.title, grant)


def test_only_the_block_between_the_markers_changes() -> None:
    text = f"# Title\n\nBefore.\n\n{CONTRACTS_START}\nold table\n{CONTRACTS_END}\n\nAfter.\n"
    updated = with_contracts(text)
    assert (
        updated
        == f"# Title\n\nBefore.\n\n{CONTRACTS_START}\n{GENERATED}\n{markdown_table()}{CONTRACTS_END}\n\nAfter.\n"
    )
    assert with_contracts(updated) == updated
    assert with_contracts("# No table\n") == "# No table\n"
