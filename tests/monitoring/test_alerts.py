"""Every generated alert links, by an absolute URL, to a runbook section that says what to check and do.

Budget: < 1 s (reads the generated rule files and monitoring/runbooks.md).
"""
import re
from urllib.parse import urlparse

import pytest

from monitoring import alerts


def _runbook_urls(rule_groups):
    return sorted({(rule["alert"], rule["annotations"]["runbook_url"]) for groups in rule_groups.values()
                   for group in groups["groups"] for rule in group["rules"] if "alert" in rule})


def test_the_base_url_is_absolute_and_names_the_runbook_file():
    url = urlparse(alerts.RUNBOOK_URL)
    assert url.scheme == "https" and url.netloc and not url.fragment, alerts.RUNBOOK_URL
    assert url.path.endswith("/" + "/".join(alerts.RUNBOOKS.parts[-2:])), "the URL must name monitoring/runbooks.md"


def test_every_runbook_url_is_absolute_and_its_anchor_is_a_section(rule_groups):
    sections = alerts.runbook_sections()
    for alert, link in _runbook_urls(rule_groups):
        url = urlparse(link)
        assert url.scheme == "https" and url.netloc, f"{alert}: {link} is not an absolute URL"
        assert link.startswith(alerts.RUNBOOK_URL + "#"), f"{alert}: {link} is not under the one base URL"
        assert url.fragment in sections, f"{alert}: runbooks.md has no section #{url.fragment}"


def test_every_linked_section_says_what_to_check_and_what_to_do(rule_groups):
    sections = alerts.runbook_sections()
    for alert, link in _runbook_urls(rule_groups):
        body = sections[urlparse(link).fragment]
        for step in ("Check", "Act"):
            match = re.search(rf"^{step}:(.*?)(?=^\w+:|\Z)", body, flags=re.MULTILINE | re.DOTALL)
            assert match and len(match.group(1).split()) >= 5, f"{alert}: its section lacks a '{step}:' part"


def test_a_section_without_its_act_part_is_caught(tmp_path):
    """The check above can fail."""
    text = alerts.RUNBOOKS.read_text()
    (tmp_path / "runbooks.md").write_text(re.sub(r"^Act:.*?(?=^## )", "", text, count=1,
                                                 flags=re.MULTILINE | re.DOTALL))
    sections = alerts.runbook_sections(tmp_path / "runbooks.md")
    assert "Act:" in alerts.runbook_sections()["api-availability"]
    assert "Act:" not in sections["api-availability"]


@pytest.mark.parametrize("heading,anchor", [("api-availability", "api-availability"),
                                            ("TfshipApiDown", "tfshipapidown"),
                                            ("What on-call does, first", "what-on-call-does-first")])
def test_anchors_follow_githubs_rule(heading, anchor):
    assert alerts.anchor(heading) == anchor
