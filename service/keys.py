"""Administer API keys: create (the key is shown once), list and revoke. Run in an app context."""
import sqlalchemy as sa
from flask import current_app

from service import db
from service.auth import SECRET_EXTENSION, digest, new_key
from service.errors import NotFound, Unprocessable
from service.tables import ROLES, ApiKey, utcnow


def create_key(name, role):
    """Store a new key for role and return (key, row); only the digest is kept."""
    if role not in ROLES:
        raise Unprocessable(f"unknown role {role!r}; roles are {', '.join(ROLES)}", field="role")
    if not name or len(name) > 128:
        raise Unprocessable("a key needs a name of 1-128 characters", field="name")
    key, prefix = new_key()
    row = ApiKey(prefix=prefix, name=name, role=role,
                 digest=digest(current_app.extensions[SECRET_EXTENSION], key))
    session = db.session()
    session.add(row)
    session.commit()
    return key, row


def list_keys():
    """Return every key row, newest first (no secrets: prefixes, names, roles, dates)."""
    return db.session().execute(sa.select(ApiKey).order_by(ApiKey.id.desc())).scalars().all()


def revoke_key(prefix):
    """Revoke the key with prefix and return its row (already revoked keys stay revoked)."""
    session = db.session()
    row = session.execute(sa.select(ApiKey).where(ApiKey.prefix == prefix)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"no API key has prefix {prefix!r}", field="prefix")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.commit()
    return row
