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


def test_every_setting_is_read_by_the_service_and_every_variable_the_readme_names_is_a_setting():
    """No dead settings: each field of ``Config`` is used somewhere in the service (not only filled in by
    ``from_env``), and each variable in the README's settings table is one that ``from_env`` reads."""
    import dataclasses

    from notifications.config import Config

    package = Path(__file__).resolve().parents[1] / "notifications"
    code = "\n".join(path.read_text(encoding="utf-8") for path in package.rglob("*.py"))
    unused = [f.name for f in dataclasses.fields(Config) if not re.search(rf"(?<!default)\.{f.name}\b", code)]
    assert unused == [], f"settings nothing reads: {unused}"
    settings_code = (package / "config.py").read_text(encoding="utf-8")
    read = set(re.findall(r'(?:_env|_choice)\("([A-Z][A-Z0-9_]+)"', settings_code))
    section = README.read_text(encoding="utf-8").split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = {name for line in section.splitlines() if line.startswith("| `")
                  for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1])}
    assert documented and documented <= read, f"the README names settings nothing reads: {documented - read}"
