"""TF Serving's on-disk layout: `<base>/<name>/<version>/`, versions are integer directory names."""
from pathlib import Path

METADATA_FILE = "tfship_metadata.json"
WARMUP_FILE = "tf_serving_warmup_requests"


def version_dirs(model_dir):
    """Every version directory of a model, by integer version; other names are ignored, as TF Serving does."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return {}
    return {int(p.name): p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()}


def metadata_path(version_dir):
    return Path(version_dir) / "assets.extra" / METADATA_FILE


def warmup_path(version_dir):
    return Path(version_dir) / "assets.extra" / WARMUP_FILE
