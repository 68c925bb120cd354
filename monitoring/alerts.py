"""What every generated alert carries: severity, component, summary, description and a runbook link."""
import re
from pathlib import Path

RUNBOOKS = Path(__file__).with_name("runbooks.md")
# Where on-call opens runbooks.md from an Alertmanager notification or a Grafana alert: the repository's
# web address and the file's path in it. The one setting for every runbook_url; a fork or a mirror
# changes it here and runs `python -m monitoring.generate`.
RUNBOOK_URL = "https://github.com/example/tfship/blob/main/monitoring/runbooks.md"
SEVERITIES = ("page", "ticket", "none")


def alert(name, expr, for_, severity, component, summary, description, runbook, labels=None):
    """One Prometheus alerting rule; `runbook` is the anchor of its section in runbooks.md."""
    if severity not in SEVERITIES:
        raise ValueError(f"{name}: severity {severity!r} is not one of {SEVERITIES}")
    rule = {"alert": name, "expr": expr}
    if for_:
        rule["for"] = for_
    rule["labels"] = {"severity": severity, "component": component, **(labels or {})}
    rule["annotations"] = {"summary": summary, "description": description,
                           "runbook_url": f"{RUNBOOK_URL}#{runbook}"}
    return rule


def anchor(heading):
    """The anchor GitHub gives a heading: lowercase, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


def runbook_sections(path=RUNBOOKS):
    """anchor -> the text under that heading, up to the next heading."""
    parts = re.split(r"^#{1,6}[ \t]+(.+?)[ \t]*$", Path(path).read_text(), flags=re.MULTILINE)
    return {anchor(heading): body.strip() for heading, body in zip(parts[1::2], parts[2::2])}
