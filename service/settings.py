"""Every setting of the API, its default and what it does: the one source for config and docs.

Settings are layered: the defaults below, then environment variables named
``TFSHIP_API_<NAME>`` (values are parsed as JSON when they parse, so ``5`` is a number and
``true`` a boolean), then the ``test_config`` passed to ``create_app``. Other modules of
``service/`` declare their own settings as a module-level ``SETTINGS`` tuple of
:class:`Setting`; ``python -m service.settings`` prints them all as a Markdown table.
"""
import dataclasses
import json
import importlib
import os

ENV_PREFIX = "TFSHIP_API"


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting: its config key (environment: TFSHIP_API_<name>), default and meaning."""

    name: str
    default: object
    description: str


SETTINGS = (
    Setting("DATA_DIR", ".tfship/api", "Folder for the default SQLite database and key secret "
            "file (relative paths are resolved against the working directory)."),
    Setting("DATABASE_URL", None, "SQLAlchemy URL of the registry database, e.g. "
            "postgresql+psycopg://user:password@host:5432/tfship. Default: SQLite file "
            "<DATA_DIR>/registry.sqlite3, created on first start (WAL mode)."),
    Setting("DATABASE_TIMEOUT_S", 5.0, "Seconds to wait for a database connection or lock."),
    Setting("DATABASE_POOL_SIZE", 5, "Connections kept per worker process (PostgreSQL)."),
    Setting("KEY_SECRET", None, "Server secret that keys the HMAC-SHA-256 of API keys (32+ "
            "characters). Set it from a secret store; never in a file in the repository. "
            "Read once at start and removed from the config."),
    Setting("KEY_SECRET_FILE", None, "File holding the server secret when KEY_SECRET is unset "
            "(e.g. a mounted Kubernetes Secret). Default: <DATA_DIR>/api-key-secret."),
    Setting("KEY_SECRET_CREATE", True, "Create KEY_SECRET_FILE with a random secret (mode 0600) "
            "when it does not exist. Set false where several pods must share one secret."),
    Setting("KEY_CACHE_TTL_S", 30.0, "Seconds a verified API key is trusted without a "
            "database lookup (a revocation takes effect within this time)."),
    Setting("KEY_CACHE_STALE_S", 600.0, "Seconds a cached key stays usable while the database "
            "is unreachable, so predictions survive a database outage."),
    Setting("MAX_CONTENT_LENGTH", 1_048_576, "Largest request body in bytes; a larger one gets "
            "413 before it is read."),
    Setting("DEFAULT_PER_PAGE", 20, "Page size of list endpoints when per_page is not given."),
    Setting("MAX_PER_PAGE", 100, "Largest per_page a list endpoint accepts."),
    Setting("WORKERS", 2, "gunicorn worker processes (tfship api; --workers overrides)."),
    Setting("THREADS", 4, "Threads per gunicorn worker (gthread): concurrent requests per worker."),
    Setting("FORWARDED_ALLOW_IPS", "127.0.0.1", "Proxies whose X-Forwarded-* headers gunicorn "
            "trusts (comma-separated; '*' behind a trusted ingress only)."),
    Setting("SWAGGER_UI_URL", "https://cdn.jsdelivr.net/npm/swagger-ui-dist/", "Where the "
            "browser loads Swagger UI's scripts for /api/v1/docs (the API never downloads it)."),
)

# Modules that may declare SETTINGS of their own (imported only when present).
CONTRIBUTORS = ("service.upstream", "service.routing", "service.validation", "service.gateway",
                "service.metrics", "service.logs", "service.health", "service.limits",
                "service.security_headers", "service.faults", "service.tls",
                "service.gunicorn_worker", "service.shadow")


def all_settings():
    """Return every Setting: these, then those of the contributing modules present in the tree."""
    found = list(SETTINGS)
    for name in CONTRIBUTORS:
        if importlib.util.find_spec(name) is not None:
            found.extend(getattr(importlib.import_module(name), "SETTINGS", ()))
    return found


def load(config, test_config=None):
    """Fill a Flask config: defaults, then TFSHIP_API_* environment variables, then test_config."""
    config.from_mapping({setting.name: setting.default for setting in all_settings()})
    config.from_prefixed_env(ENV_PREFIX)
    if test_config:
        config.from_mapping(test_config)
    config["DATA_DIR"] = os.path.abspath(config["DATA_DIR"])
    if not config["DATABASE_URL"]:
        config["DATABASE_URL"] = f"sqlite:///{os.path.join(config['DATA_DIR'], 'registry.sqlite3')}"
    if not config["KEY_SECRET_FILE"]:
        config["KEY_SECRET_FILE"] = os.path.join(config["DATA_DIR"], "api-key-secret")


def from_environment(name):
    """Return one setting outside an app (e.g. gunicorn.conf.py): its environment value or default."""
    default = next(setting.default for setting in all_settings() if setting.name == name)
    raw = os.environ.get(f"{ENV_PREFIX}_{name}")
    if raw is None:
        return default
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def markdown_table():
    """Return every setting as a Markdown table (for the README)."""
    lines = ["| Environment variable | Default | Meaning |", "|---|---|---|"]
    for setting in all_settings():
        default = "(unset)" if setting.default is None else f"`{setting.default}`"
        lines.append(f"| `{ENV_PREFIX}_{setting.name}` | {default} | {setting.description} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
