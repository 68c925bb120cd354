"""Call the registry's API over HTTP: rollout state and shadow mode (with If-Match), versions and history."""
from urllib.parse import quote

import requests

TIMEOUT_S = (2.0, 10.0)


class RegistryError(RuntimeError):
    """The registry refused a call or could not be reached; the message says which and why."""

    def __init__(self, message, status=None, body=None):
        super().__init__(message)
        self.status, self.body = status, body


def read_key(path):
    """Return the API key stored in the file at path (the key never travels on a command line)."""
    try:
        with open(path, encoding="utf-8") as handle:
            key = handle.read().strip()
    except OSError as error:
        raise RegistryError(f"cannot read the key file {path}: {error.strerror}") from None
    if not key:
        raise RegistryError(f"the key file {path} is empty")
    return key


class RegistryClient:
    """The registry at base_url, called with one API key."""

    def __init__(self, base_url, key, timeout=TIMEOUT_S):
        self.base_url, self.timeout = base_url.rstrip("/"), timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {key}"

    def _url(self, model, suffix=""):
        return f"{self.base_url}/api/v1/models/{quote(model, safe='')}{suffix}"

    def _call(self, method, url, **kwargs):
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as error:
            raise RegistryError(f"the registry at {self.base_url} is unreachable "
                                f"({type(error).__name__})") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            message = body.get("message") if isinstance(body, dict) else None
            raise RegistryError(f"{method} {url} answered {response.status_code}: "
                                f"{message or response.reason}", response.status_code, body)
        return response, body

    def rollout(self, model):
        """Return (state, etag) of model's rollout: {stable, canary, previous, canary_weight}."""
        response, body = self._call("GET", self._url(model, "/rollout"))
        return body, response.headers.get("ETag")

    def set_rollout(self, model, *, stable, canary=None, canary_weight=0.0, etag=None,
                    step=None, reason="", measurements=None):
        """PUT model's rollout state (If-Match etag when given) and return the new (state, etag)."""
        headers = {"If-Match": etag} if etag else {}
        body = {"stable": stable, "canary": canary, "canary_weight": canary_weight,
                "step": step, "reason": reason, "measurements": measurements or {}}
        response, answer = self._call("PUT", self._url(model, "/rollout"), json=body,
                                      headers=headers)
        return answer, response.headers.get("ETag")

    def version(self, model, version):
        """Return the registered version (input_schema, metrics, status, ...)."""
        return self._call("GET", self._url(model, f"/versions/{int(version)}"))[1]

    def history(self, model, per_page=20):
        """Return the newest rollout transitions of model."""
        return self._call("GET", self._url(model, "/rollout/history"),
                          params={"per_page": per_page})[1]["items"]

    def shadow(self, model, version=None):
        """Return (shadow state with comparisons, etag); version: another shadow's comparison."""
        params = {"version": int(version)} if version is not None else {}
        response, body = self._call("GET", self._url(model, "/rollout/shadow"), params=params)
        return body, response.headers.get("ETag")

    def set_shadow(self, model, version, share, *, etag=None, reason=""):
        """Mirror share of stable's traffic to version; return the new (state, etag)."""
        response, body = self._call(
            "PUT", self._url(model, "/rollout/shadow"),
            json={"version": int(version), "share": share, "reason": reason},
            headers={"If-Match": etag} if etag else {})
        return body, response.headers.get("ETag")

    def stop_shadow(self, model, *, etag=None, reason=""):
        """Stop shadow mode; return (state with the final comparisons, etag)."""
        response, body = self._call(
            "DELETE", self._url(model, "/rollout/shadow") + (
                f"?reason={quote(reason)}" if reason else ""),
            headers={"If-Match": etag} if etag else {})
        return body, response.headers.get("ETag")
