"""The README's policy table is ``domain.POLICY``: the same kinds, each with the same need and link."""
import re
from pathlib import Path

from notifications import domain

README = Path(__file__).resolve().parents[1] / "README.md"


def policy_rows() -> dict[str, tuple[str, str]]:
    """``kind -> (need, path)`` from the table under "The notification policy"."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## The notification policy", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[1].startswith(("yes", "no")):
            continue
        need = domain.ACTION if cells[1].startswith("yes") else domain.NEWS
        path = cells[3].strip("`").replace("<id>", "{event_id}")
        for kind in re.findall(r"`([a-z_]+)`", cells[0]):
            assert kind not in rows, f"{kind} is in two rows of the README's policy table"
            rows[kind] = (need, path)
    return rows


def test_the_readme_policy_table_is_domain_policy():
    rows = policy_rows()
    assert set(rows) == set(domain.POLICY), "README policy table and domain.POLICY name different kinds"
    for kind, rule in domain.POLICY.items():
        assert rows[kind] == (rule.need, rule.path), kind
