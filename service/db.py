"""Open the registry database: one engine per app, one session per app context.

SQLite by default (the file and its folder are created on first connect, WAL mode, foreign
keys on, a busy timeout so concurrent workers wait instead of failing); PostgreSQL through
``DATABASE_URL`` (``postgresql+psycopg://user:pass@host/db``). The schema comes only from
Alembic (``tfship db upgrade``): nothing here creates tables.

A pooled PostgreSQL connection the server has closed (restart, idle timeout, a terminated
backend) is replaced when it is checked out, by looking at its socket: SQLAlchemy's
``pool_pre_ping`` would cost a round trip to the server on every request instead.
"""
import os
import select

import sqlalchemy as sa
from flask import current_app, g, has_request_context, request
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, sessionmaker

from service.errors import PreconditionFailed, ServiceUnavailable, render

EXTENSION = "tfship_db"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Base(DeclarativeBase):
    """Declarative base of every registry table."""


def _enable_sqlite_pragmas(dbapi_connection, _record):
    dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" event below starts transactions
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _begin_sqlite_transaction(connection):
    """Take SQLite's write lock up front in requests that write.

    A deferred transaction that read, then tries to write after another writer committed,
    fails at once with "database is locked" (its snapshot is stale). BEGIN IMMEDIATE waits
    for the lock instead, so the request then reads the latest row and its If-Match check
    answers 412, as on PostgreSQL. Predictions are POSTs that only read the registry: they
    must not hold the write lock across the model-server call (a slow canary would then block
    the very rollout change that aborts it).
    """
    writes = (has_request_context() and request.method in WRITE_METHODS
              and request.blueprint != "gateway")
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")


_FRESH = "tfship_fresh"


def _readable(fd):
    poller = select.poll()  # not select.select: it fails on descriptors past FD_SETSIZE
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def _mark_fresh(_dbapi_connection, record):
    record.info[_FRESH] = True


def _replace_if_closed_by_server(dbapi_connection, record, _proxy):
    """Pool checkout: raise DisconnectionError (the pool then connects afresh) for a pooled
    connection the server has closed; a connection just opened is used as it is (as pre-ping).

    An idle connection has nothing to read: all of its last answer was read. When its socket
    is readable anyway, the server has closed it (end of file) or said why it is closing it (a
    FATAL error), so the connection cannot serve the request. A zero-timeout poll is a system
    call on this machine; pre-ping's ``SELECT`` is a round trip to the server.
    """
    if record.info.pop(_FRESH, False):
        return
    if dbapi_connection.closed or dbapi_connection.broken or _readable(dbapi_connection.fileno()):
        raise sa.exc.DisconnectionError("the server closed this pooled connection")


def create_db_engine(url, *, timeout_s=5.0, pool_size=5):
    """Return an engine for url, with SQLite pragmas or PostgreSQL pool settings applied."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(parsed.database)), exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": timeout_s})
        event.listen(engine, "connect", _enable_sqlite_pragmas)
        event.listen(engine, "begin", _begin_sqlite_transaction)
        return engine
    psycopg = parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() == "psycopg"
    engine = sa.create_engine(
        parsed, pool_pre_ping=not psycopg, pool_size=pool_size, pool_timeout=timeout_s,
        connect_args={"connect_timeout": max(1, int(timeout_s))} if parsed.get_backend_name()
        == "postgresql" else {})
    if psycopg:  # _replace_if_closed_by_server stands in for pre-ping
        event.listen(engine, "connect", _mark_fresh)
        event.listen(engine, "checkout", _replace_if_closed_by_server)
    return engine


def init_app(app):
    """Create the app's engine and session factory; close the request's session on teardown."""
    engine = create_db_engine(app.config["DATABASE_URL"], timeout_s=app.config["DATABASE_TIMEOUT_S"],
                              pool_size=app.config["DATABASE_POOL_SIZE"])
    app.extensions[EXTENSION] = sessionmaker(engine, expire_on_commit=False)
    app.teardown_appcontext(_close_session)
    app.register_error_handler(sa.exc.OperationalError, _database_unavailable)
    app.register_error_handler(sa.exc.InterfaceError, _database_unavailable)
    app.register_error_handler(sa.orm.exc.StaleDataError, _concurrent_update)


def engine(app=None):
    """Return the app's engine."""
    return (app or current_app).extensions[EXTENSION].kw["bind"]


def session():
    """Return this app context's session, opening it on first use."""
    if "db_session" not in g:
        g.db_session = current_app.extensions[EXTENSION]()
    return g.db_session


def read_connection():
    """Return the connection for this request's reads that need no transaction of their own.

    On PostgreSQL, when this app context's session has not begun a transaction, its connection
    in autocommit: a statement then sees its own snapshot, and the request saves the BEGIN and
    ROLLBACK round trips around it (a list reads its page and total in one statement). Else
    (SQLite, or the session already read or wrote) the session's connection, as it is.
    """
    db_session = session()
    if db_session.in_transaction() or db_session.get_bind().dialect.name != "postgresql":
        return db_session.connection()
    return db_session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def _close_session(_exc):
    db_session = g.pop("db_session", None)
    if db_session is not None:
        db_session.close()


def _database_unavailable(exc):
    current_app.logger.warning("database unavailable: %s", type(exc).__name__)
    return render(ServiceUnavailable(
        "the registry database is unavailable (or not migrated: run 'tfship db upgrade'); "
        "retry later", code="database_unavailable", retry_after=2))


def _concurrent_update(_exc):
    return render(PreconditionFailed("the resource was changed by a concurrent request; read it "
                                     "again and retry", field="If-Match"))
