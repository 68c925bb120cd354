"""Reading every replica's status API: a version counts only when AVAILABLE on all of them.
Two real HTTP servers answer TF Serving's status JSON. Budget: <1 s."""
import pytest

from service.delivery import replicas
from tests.conftest import free_port
from tests.json_server import JsonServer


class StatusServer(JsonServer):
    """Answers GET /v1/models/m[/labels/L] from ``states`` {version: (state, error_code)}."""

    def __init__(self, states, labels=None):
        self.states, self.labels = states, labels or {}
        super().__init__(self._status)

    def _status(self, method, path, headers, body):
        if path.startswith("/v1/models/m/labels/"):
            label = path.rsplit("/", 1)[-1]
            if label not in self.labels:
                return 400, {"error": f"Unrecognized servable version label: {label}"}
            wanted = [self.labels[label]]
        elif path == "/v1/models/m":
            wanted = sorted(self.states)
        else:
            return 404, {"error": "Servable not found"}
        return 200, {"model_version_status": [
            {"version": str(v), "state": self.states[v][0],
             "status": {"error_code": self.states[v][1], "error_message": ""}} for v in wanted]}


@pytest.fixture
def two_replicas():
    first = StatusServer({1: ("AVAILABLE", "OK"), 2: ("AVAILABLE", "OK")}, {"stable": 1})
    second = StatusServer({1: ("AVAILABLE", "OK"), 2: ("LOADING", "OK"),
                           3: ("END", "NOT_FOUND")}, {"stable": 1})
    yield first, second
    first.close()
    second.close()


def test_only_versions_available_on_every_replica_count(two_replicas):
    urls = [server.url for server in two_replicas]
    assert replicas.available_everywhere(urls, "m") == {1}
    assert replicas.available_everywhere(urls[:1], "m") == {1, 2}
    assert replicas.failed_anywhere(urls, "m", {2, 3}) == {3}
    assert replicas.version_states(urls[1], "unknown") == {}


def test_labels_are_read_per_replica(two_replicas):
    assert replicas.label_version(two_replicas[0].url, "m", "stable") == 1
    assert replicas.label_version(two_replicas[0].url, "m", "canary") is None


def test_an_unreachable_replica_is_an_error_not_an_empty_answer():
    with pytest.raises(replicas.ReplicaUnreachable):
        replicas.available_everywhere([f"http://127.0.0.1:{free_port()}"], "m")
