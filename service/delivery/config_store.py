"""Where the reconciler keeps TF Serving's model config: a file, or one key of a Kubernetes ConfigMap.

A file suits one host (the local stack). In a cluster every model-server replica mounts the
ConfigMap and polls it (--model_config_file_poll_wait_seconds); the reconciler reads and
replaces that ConfigMap through the Kubernetes API with its pod's ServiceAccount token. A
replace carries the resourceVersion it read, so a concurrent change is refused (409), never
overwritten: the next pass reads again.
"""
import os

import requests

from service.delivery import model_config

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TIMEOUT_S = (2.0, 10.0)
FIELD_MANAGER = "tfship-reconciler"


class ConfigMapError(model_config.ConfigFileError):
    """The ConfigMap could not be read or replaced; the message says which and why."""


class FileStore:
    """The model config in a file (replaced atomically)."""

    def __init__(self, path):
        self.path = path

    def read(self):
        return model_config.read(self.path)

    def write(self, entries):
        model_config.write(self.path, entries)

    def __str__(self):
        return self.path


class KubernetesApi:
    """The Kubernetes API server, called with a bearer token read from a file on every call.

    The in-cluster token is projected and rotated by the kubelet, so it is never cached.
    """

    def __init__(self, base_url, token_file, ca_file=None, timeout=TIMEOUT_S):
        self.base_url, self.token_file, self.timeout = base_url.rstrip("/"), token_file, timeout
        self.verify = ca_file if ca_file else True
        self.session = requests.Session()

    @classmethod
    def in_cluster(cls, folder=SERVICE_ACCOUNT_DIR):
        """The API server of the cluster this pod runs in (KUBERNETES_SERVICE_HOST/PORT)."""
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise ConfigMapError("not running in a Kubernetes pod: KUBERNETES_SERVICE_HOST is unset")
        host = f"[{host}]" if ":" in host else host
        return cls(f"https://{host}:{port}", os.path.join(folder, "token"), os.path.join(folder, "ca.crt"))

    def call(self, method, path, body=None):
        """Return the JSON answer of one call; raise ConfigMapError unless it answered 200."""
        try:
            with open(self.token_file, encoding="utf-8") as handle:
                token = handle.read().strip()
        except OSError as error:
            raise ConfigMapError(f"cannot read the API token {self.token_file}: {error.strerror}") from None
        try:
            response = self.session.request(method, self.base_url + path, json=body, timeout=self.timeout,
                                            verify=self.verify, headers={"Authorization": f"Bearer {token}"})
        except requests.RequestException as error:
            raise ConfigMapError(f"{method} {path}: {type(error).__name__}") from None
        if response.status_code != 200:
            try:
                reason = response.json().get("message", "")
            except ValueError:
                reason = ""
            raise ConfigMapError(f"{method} {path} answered {response.status_code} {reason}".rstrip())
        return response.json()


class ConfigMapStore:
    """The model config as key of ConfigMap namespace/name."""

    def __init__(self, namespace, name, key, api):
        self.namespace, self.name, self.key, self.api = namespace, name, key, api
        self.path = f"/api/v1/namespaces/{namespace}/configmaps/{name}"
        self.last_read = None

    @classmethod
    def parse(cls, reference, key, api):
        """Build from `namespace/name`."""
        namespace, _, name = reference.partition("/")
        if not namespace or not name or "/" in name:
            raise ValueError(f"{reference!r} is not namespace/name")
        return cls(namespace, name, key, api)

    def read(self):
        found = self.api.call("GET", self.path)
        text = (found.get("data") or {}).get(self.key)
        if text is None:
            raise ConfigMapError(f"ConfigMap {self} has no key {self.key!r}")
        self.last_read = found
        return model_config.parse(text)

    def write(self, entries):
        if self.last_read is None:
            raise ConfigMapError(f"ConfigMap {self}: read it before replacing it")
        # metadata.resourceVersion is the one read: the API server refuses (409) a stale replace.
        # managedFields stay out: the server keeps them and records this change under our name.
        metadata = {k: v for k, v in self.last_read["metadata"].items() if k != "managedFields"}
        replacement = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata,
                       "data": {**(self.last_read.get("data") or {}), self.key: model_config.render(entries)}}
        self.last_read = self.api.call("PUT", f"{self.path}?fieldManager={FIELD_MANAGER}", replacement)

    def __str__(self):
        return f"{self.namespace}/{self.name}"
