"""What every generated alert carries: severity, component, summary, description and a runbook link."""
import re
from pathlib import Path

RUNBOOKS = Path(__file__).with_name("runbooks.md")
# Relative to the repository root; a deployment that serves the repo elsewhere rewrites this prefix.
RUNBOOK_URL = "monitoring/runbooks.md"
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


def runbook_anchors(path=RUNBOOKS):
    """The anchors GitHub gives the runbook's headings: lowercase, spaces to dashes, punctuation dropped."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", Path(path).read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^a-z0-9 _-]", "", h.lower()).replace(" ", "-") for h in headings}
