"""Serve the API over HTTPS (gunicorn's certfile/keyfile), and make a certificate for local use.

In the cluster TLS ends at the ingress (cert-manager); the pods speak HTTP behind it and learn
the scheme from X-Forwarded-Proto (FORWARDED_ALLOW_IPS). Locally, or wherever the API faces
callers itself, set TLS_CERT_FILE and TLS_KEY_FILE and gunicorn serves HTTPS only.
:func:`generate_self_signed` writes a short-lived certificate for localhost with the
``openssl`` command line (the API's virtualenv has no ``cryptography``); the key file is
created with mode 0600 and is never logged.
"""
import os
import subprocess
import tempfile

from service.settings import Setting

SETTINGS = (
    Setting("TLS_CERT_FILE", None, "PEM certificate (chain) for gunicorn to serve HTTPS; with "
            "TLS_KEY_FILE. Unset: plain HTTP (TLS ends at the ingress)."),
    Setting("TLS_KEY_FILE", None, "PEM private key of TLS_CERT_FILE (a mounted Secret; mode 0600)."),
)
LOCAL_NAMES = ("DNS:localhost", "IP:127.0.0.1", "IP:::1")


def gunicorn_options(cert_file, key_file):
    """Return gunicorn's certfile/keyfile settings, checking both or neither are given."""
    if bool(cert_file) != bool(key_file):
        raise RuntimeError("set both TFSHIP_API_TLS_CERT_FILE and TFSHIP_API_TLS_KEY_FILE, or neither")
    if not cert_file:
        return {}
    for path in (cert_file, key_file):
        if not os.path.isfile(path):
            raise RuntimeError(f"TLS file {path} does not exist")
    return {"certfile": cert_file, "keyfile": key_file}


def generate_self_signed(cert_file, key_file, *, names=LOCAL_NAMES, days=30, timeout=30):
    """Write a self-signed P-256 certificate for names (subjectAltName entries) and its key."""
    os.makedirs(os.path.dirname(os.path.abspath(key_file)), exist_ok=True)
    # The key is written into a private folder, then moved: it is never world-readable.
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(key_file))) as folder:
        os.chmod(folder, 0o700)
        new_key = os.path.join(folder, "key.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-days", str(days), "-subj", "/CN=localhost",
             "-addext", "subjectAltName=" + ",".join(names),
             "-keyout", new_key, "-out", cert_file],
            check=True, capture_output=True, timeout=timeout)
        os.chmod(new_key, 0o600)
        os.replace(new_key, key_file)
    return cert_file, key_file
