"""Page a list by page number (OFFSET) or by an opaque cursor (keyset), always with the total.

Page numbers (``page=N``) are the API's original contract and stay: handy for jumping, but
rows inserted or deleted before the page shift it. A cursor (``cursor=...``, taken from a
page's ``links.next`` or ``links.prev``; an empty ``cursor=`` starts at the first item)
names the last (or first) row seen by its sort key and id, so the next page starts right
after it however the rows before it change, and the database seeks to it in the sort's
index instead of counting past every earlier row.

A cursor is URL-safe base64 of a small JSON object: the sort it belongs to, the direction
and the key. Clients must treat it as opaque; a cursor that does not decode, or belongs to
another sort, gets a 400.
"""
import base64
import binascii
import dataclasses
import datetime as dt
import json
import math
from urllib.parse import quote, urlencode

import sqlalchemy as sa
from flask import request, url_for

from service import db
from service.errors import BadRequest


@dataclasses.dataclass(frozen=True)
class SortOrder:
    """The list's order: a named sort on one column, ties broken by a unique id column."""

    name: str
    column: sa.ColumnElement
    tie_breaker: sa.ColumnElement
    descending: bool

    def clauses(self, reverse=False, columns=None):
        """ORDER BY clauses (reverse=True reads the same order backwards), on the sort's columns
        or on columns standing for them (a subquery's sort_key and sort_id)."""
        down = self.descending != reverse
        return [c.desc() if down else c.asc() for c in columns or (self.column, self.tie_breaker)]

    def beyond(self, key, after):
        """The condition 'comes after key' (or before it, after=False) in this order; key holds
        the sort value and the id, as SQL expressions (bind parameters)."""
        row = sa.tuple_(self.column, self.tie_breaker)
        bound = sa.tuple_(*key)
        return row > bound if after != self.descending else row < bound


def sort_order(sort, columns, tie_breaker):
    """Return the SortOrder of a '-'-prefixed sort name over columns, with a unique tie-breaker."""
    return SortOrder(sort, columns[sort.lstrip("-")], tie_breaker, sort.startswith("-"))


# --- cursors ------------------------------------------------------------------------------

def encode_cursor(order, key, after):
    """Return the opaque cursor for the position just after (or before) key in order."""
    value = key[0].isoformat() if isinstance(key[0], dt.datetime) else key[0]
    text = json.dumps({"s": order.name, "d": "after" if after else "before", "k": [value, key[1]]},
                      separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor, order):
    """Return (key, after) of a cursor for order; key is None for the empty cursor (the start)."""
    if cursor == "":
        return None, True
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        sort, direction, (value, row_id) = data["s"], data["d"], data["k"]
        if direction not in ("after", "before") or type(row_id) is not int:
            raise ValueError(direction)
        value = _key_value(value, order.column)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, KeyError) as error:
        raise BadRequest("the cursor is not valid: use a cursor from a page's links, unchanged",
                         field="cursor") from error
    if sort != order.name:
        raise BadRequest(f"the cursor belongs to sort={sort}, not sort={order.name}; "
                         "keep the sort of the page it came from", field="cursor")
    return (value, row_id), direction == "after"


def _key_value(value, column):
    column_type = column.type
    if isinstance(column_type, sa.types.TypeDecorator):
        column_type = column_type.impl_instance
    python_type = column_type.python_type
    if python_type is dt.datetime:
        if not isinstance(value, str):
            raise TypeError(value)
        parsed = dt.datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError(value)
        return parsed
    if type(value) is not python_type:
        raise TypeError(value)
    return value


# --- pages --------------------------------------------------------------------------------

# A list's statements are built once per shape (filters given, sort, paging mode) with every
# value a bind parameter, then run with the request's values: building them was a fifth of the
# list's CPU time, and the database sees the same statement text again (psycopg prepares it).
# The parameters these statements add to the list's own:
LIMIT, OFFSET, CURSOR_KEY, CURSOR_ID = "page_limit", "page_offset", "cursor_key", "cursor_id"
PAGE, FIRST, AFTER, BEFORE = "page", "first", "after", "before"  # paging modes


def page_statements(keys, order, mode, items):
    """Return (page statement, count statement) of the list keys selects, in paging mode.

    keys: a select carrying the list's FROM and WHERE (its columns are replaced). The page is
    found on the sort and id columns alone, so an index on them serves it without touching
    the rows (a deferred join): items(page_keys, order_by, total) returns the statement that
    reads the items of the page whose keys are the subquery page_keys (columns sort_key,
    sort_id), in the ORDER BY clauses order_by, with the column total (the list's count) beside
    them: one statement, one round trip and one snapshot for the page and its total. The count
    statement alone answers the total when the page is empty.
    """
    count = count_statement(keys, order)
    if mode == PAGE:
        page_keys = (_key_columns(keys, order).order_by(*order.clauses())
                     .limit(sa.bindparam(LIMIT, type_=sa.Integer))
                     .offset(sa.bindparam(OFFSET, type_=sa.Integer)))
    else:
        page_keys = _key_columns(keys, order)
        if mode != FIRST:
            page_keys = page_keys.where(order.beyond((
                sa.bindparam(CURSOR_KEY, type_=order.column.type),
                sa.bindparam(CURSOR_ID, type_=order.tie_breaker.type)), mode == AFTER))
        page_keys = (page_keys.order_by(*order.clauses(reverse=mode == BEFORE))
                     .limit(sa.bindparam(LIMIT, type_=sa.Integer)))
    page_keys = page_keys.subquery("page_keys")
    order_by = order.clauses(mode == BEFORE, (page_keys.c.sort_key, page_keys.c.sort_id))
    return items(page_keys, order_by, count.scalar_subquery().label("total")), count


def list_page(statements, params, *, order, page, per_page, cursor, run, build):
    """Return the page dict (items, total, page, per_page, pages, links) of a filtered list.

    statements(mode) returns page_statements() of the list (built once per shape by the
    caller); params holds the values of the list's own bind parameters. run(statement, params)
    returns the statement's rows; build(rows) turns the page statement's rows into
    [(sort_key, sort_id, item)]. page and cursor are exclusive; cursor None means page-number
    paging.
    """
    if cursor is not None and "page" in request.args:
        raise BadRequest("give either page or cursor, not both", field="cursor")
    if cursor is None:
        mode = PAGE
        params = {**params, LIMIT: per_page, OFFSET: (page - 1) * per_page}
    else:
        key, after = decode_cursor(cursor, order)
        mode = FIRST if key is None else AFTER if after else BEFORE
        params = {**params, LIMIT: per_page + 1}
        if key is not None:
            params[CURSOR_KEY], params[CURSOR_ID] = key
    page_statement, count = statements(mode)
    rows = run(page_statement, params)
    total = rows[0].total if rows else run(count, params)[0][0]
    found = build(rows)
    pages = max(1, math.ceil(total / per_page))
    if cursor is None:
        links = _page_links(page, pages)
    else:
        more = len(found) > per_page
        found = found[:per_page] if after else found[:per_page][::-1]
        links = _cursor_links(order, found, key, after, more, pages)
        page = None
    return {"items": [row[2] for row in found], "total": total, "page": page,
            "per_page": per_page, "pages": pages, "links": links}


def count_statement(keys, order):
    """SELECT count(*) of the rows keys selects."""
    return sa.select(sa.func.count()).select_from(
        keys.with_only_columns(order.tie_breaker).order_by(None).subquery())


def _key_columns(keys, order):
    return keys.with_only_columns(order.column.label("sort_key"), order.tie_breaker.label("sort_id"))


def page_of(query, *, page, per_page, order_by):
    """Return the page dict of a select of ORM rows, by page number only (OFFSET)."""
    session = db.session()
    total = session.execute(sa.select(sa.func.count()).select_from(
        query.order_by(None).subquery())).scalar_one()
    items = session.execute(query.order_by(*order_by).limit(per_page)
                            .offset((page - 1) * per_page)).scalars().all()
    pages = max(1, math.ceil(total / per_page))
    return {"items": items, "total": total, "page": page, "per_page": per_page, "pages": pages,
            "links": _page_links(page, pages)}


def _link_maker():
    """Return link(**changes): this request's URL with page/cursor replaced by changes."""
    base = url_for(request.endpoint, **(request.view_args or {}))
    kept = [(name, value) for name, value in request.args.items(multi=True)
            if name not in ("page", "cursor")]

    def link(**changes):
        return f"{base}?{urlencode(kept + list(changes.items()), quote_via=quote)}"
    return link


def _page_links(page, pages):
    link = _link_maker()
    links = {"self": link(page=page), "first": link(page=1), "last": link(page=pages)}
    if page < pages:
        links["next"] = link(page=page + 1)
    if page > 1:
        links["prev"] = link(page=min(page - 1, pages))
    return links


def _cursor_links(order, rows, key, after, more, pages):
    """Cursor links: next after the last row, prev before the first, when rows lie there.

    Going forward, rows lie before this page when it started after a key; going backward,
    rows lie after it. An empty page (its rows were deleted) links only to first and last.
    """
    link = _link_maker()
    links = {"self": link(cursor=request.args["cursor"]), "first": link(page=1),
             "last": link(page=pages)}
    if rows:
        if more if after else key is not None:
            links["next"] = link(cursor=encode_cursor(order, rows[-1][:2], True))
        if key is not None if after else more:
            links["prev"] = link(cursor=encode_cursor(order, rows[0][:2], False))
    return links
