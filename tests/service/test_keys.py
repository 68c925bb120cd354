"""Key administration: create (shown once), list, revoke. Budget: <1 s."""
import pytest

from service import keys
from service.errors import NotFound, Unprocessable


def test_create_list_revoke(app):
    with app.app_context():
        key, row = keys.create_key("ci pipeline", "deployer")
        assert key.startswith(f"tfs_{row.prefix}_") and len(key) == 4 + 12 + 1 + 43
        listed = {item.prefix: item for item in keys.list_keys()}
        assert listed[row.prefix].role == "deployer" and listed[row.prefix].revoked_at is None
        revoked = keys.revoke_key(row.prefix)
        assert revoked.revoked_at is not None
        assert keys.revoke_key(row.prefix).revoked_at == revoked.revoked_at  # stays revoked
        assert keys.create_key("another", "deployer")[0] != key


@pytest.mark.parametrize("name, role, error", [
    ("x", "superuser", Unprocessable), ("", "reader", Unprocessable),
    ("n" * 129, "reader", Unprocessable),
])
def test_invalid_keys_are_refused(app, name, role, error):
    with app.app_context(), pytest.raises(error):
        keys.create_key(name, role)


def test_revoking_an_unknown_prefix(app):
    with app.app_context(), pytest.raises(NotFound):
        keys.revoke_key("ffffffffffff")
