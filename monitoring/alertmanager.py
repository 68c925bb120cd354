"""Alertmanager routing: pages and tickets to their receivers, the Watchdog to a dead man's switch.

Receivers read their secrets from files that the deployment mounts (SECRETS_DIR: pagerduty-routing-key,
slack-webhook-url, dead-mans-switch-token); none is in the repo.
"""
SECRETS_DIR = "/etc/alertmanager/secrets"
# The dead man's switch expects the Watchdog every minute and alerts on its own when it stops.
DEAD_MANS_SWITCH_URL = "http://dead-mans-switch.monitoring.svc:8080/ping"
GROUP_BY = ["alertname", "slo", "component", "model"]


def config():
    """The whole alertmanager.yml as a dict."""
    return {
        "global": {"resolve_timeout": "5m"},
        "route": {
            "receiver": "ticket",  # anything unlabelled still reaches a human, at ticket pace
            "group_by": GROUP_BY,
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "12h",
            "routes": [
                {"receiver": "watchdog", "matchers": ['alertname="Watchdog"'],
                 "group_wait": "0s", "group_interval": "1m", "repeat_interval": "1m"},
                {"receiver": "page", "matchers": ['severity="page"'], "group_wait": "10s", "repeat_interval": "1h"},
                {"receiver": "ticket", "matchers": ['severity="ticket"']},
                # Known, deliberately silent severities end here rather than at the default ticket.
                {"receiver": "blackhole", "matchers": ['severity="none"']},
            ],
        },
        "inhibit_rules": [{
            # A ticket waits while the page on the same SLO or component fires: one problem, one call.
            # `equal` treats a label missing on both sides as equal, so component alerts (no slo label)
            # match on component alone, and SLO alerts (component="slo") on their slo.
            "source_matchers": ['severity="page"'],
            "target_matchers": ['severity="ticket"'],
            "equal": ["component", "slo"],
        }],
        "receivers": [
            {"name": "page",
             "pagerduty_configs": [{"routing_key_file": f"{SECRETS_DIR}/pagerduty-routing-key",
                                    "send_resolved": True}],
             "slack_configs": [{"api_url_file": f"{SECRETS_DIR}/slack-webhook-url", "channel": "#tfship-oncall",
                                "send_resolved": True}]},
            {"name": "ticket",
             "slack_configs": [{"api_url_file": f"{SECRETS_DIR}/slack-webhook-url", "channel": "#tfship-tickets",
                                "send_resolved": True}]},
            {"name": "watchdog",
             "webhook_configs": [{"url": DEAD_MANS_SWITCH_URL, "send_resolved": False,
                                  "http_config": {"authorization": {
                                      "credentials_file": f"{SECRETS_DIR}/dead-mans-switch-token"}}}]},
            {"name": "blackhole"},
        ],
    }
