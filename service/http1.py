"""One keep-alive HTTP/1.1 connection: write a request, read its answer, as cheaply as Python can.

http.client (the standard library) opens the connection here (TCP_NODELAY, TLS with the
server name checked, the connect timeout); requests and answers then go over the raw socket.
http.client wraps every answer in a new file object and parses its headers with the email
package: ~3x the CPU of the loop below, which was a tenth of the gateway's CPU per request.

What an answer may be: a status line, headers (at most MAX_HEADERS lines of at most
MAX_LINE bytes), then a body framed by Content-Length, chunked transfer coding, or the end
of the connection. Interim 1xx answers are skipped. The exceptions are http.client's own,
so callers classify failures as before: ``RemoteDisconnected`` (an OSError: the server
closed the connection before answering), ``IncompleteRead`` (the connection ended within
the answer), ``BadStatusLine``, ``LineTooLong`` and other ``HTTPException`` (the answer is
not HTTP), ``TimeoutError``.

A connection is reused only when its answer ended exactly where the bytes received end and
the server did not ask to close it: bytes past the answer would be read as the next answer.
"""
import http.client
import re

MAX_LINE = 65536
MAX_HEADERS = 100
RECV_BYTES = 65536
NO_BODY_STATUSES = frozenset({204, 304})
_HEAD_END = re.compile(rb"\r?\n\r?\n")


class Connection:
    """A connected socket with its receive buffer and the time it was opened."""

    def __init__(self, sock, host_header, opened_at):
        self.sock = sock
        self.opened_at = opened_at
        self._host_line = f"Host: {host_header}\r\n".encode("latin-1")
        self._buffer = b""

    @classmethod
    def open(cls, connection, opened_at):
        """Adopt the socket of an http.client connection that is connected (connect() done)."""
        sock, connection.sock = connection.sock, None  # http.client must not close it later
        host = connection.host
        if ":" in host:  # an IPv6 address
            host = f"[{host}]"
        default_port = http.client.HTTPS_PORT if isinstance(
            connection, http.client.HTTPSConnection) else http.client.HTTP_PORT
        host_header = host if connection.port == default_port else f"{host}:{connection.port}"
        return cls(sock, host_header, opened_at)

    def close(self):
        """Close the socket (safe to call twice)."""
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()

    def exchange(self, method, target, body, headers):
        """Send one request; return (status, reason, body bytes, whether the connection is reusable)."""
        self.sock.sendall(self._request_bytes(method, target, body, headers))
        return self._read_answer(method)

    def _request_bytes(self, method, target, body, headers):
        lines = [f"{method} {target} HTTP/1.1\r\n".encode("latin-1"), self._host_line,
                 b"Accept-Encoding: identity\r\n"]  # as http.client sends: no compressed answers
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(b"Content-Length: %d\r\n" % len(body or b""))
        for name, value in headers.items():
            value = str(value)
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise ValueError(f"invalid header {name!r}: line breaks are not allowed")
            lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        lines.append(b"\r\n")
        if body:
            lines.append(body)
        return b"".join(lines)

    def _read_answer(self, method):
        while True:
            version, status, reason, fields = self._head()
            if not 100 <= status < 200:
                break
        connection = fields.get(b"connection", b"").lower()
        reusable = (b"close" not in connection
                    and (version != "HTTP/1.0" or b"keep-alive" in connection))
        if method == "HEAD" or status in NO_BODY_STATUSES:
            data = b""
        elif b"chunked" in fields.get(b"transfer-encoding", b"").lower():
            data = self._chunked_body()
        elif b"content-length" in fields:
            data = self._read_exactly(_content_length(fields[b"content-length"]))
        else:
            data, reusable = self._read_to_close(), False
        return status, reason, data, reusable and not self._buffer

    def _head(self):
        """Return the version, status, reason and framing fields of the next answer's head.

        The head is split once it is whole (one search, one split), not read line by line:
        reading it a line at a time was most of this module's CPU per answer.
        """
        while True:
            end = _HEAD_END.search(self._buffer)
            if end is not None:
                head, self._buffer = self._buffer[:end.start()], self._buffer[end.end():]
                break
            if len(self._buffer) > MAX_LINE * 2:
                raise http.client.LineTooLong("header block")
            if not self._recv():
                if not self._buffer.strip():
                    raise http.client.RemoteDisconnected(
                        "Remote end closed connection without response")
                raise http.client.IncompleteRead(self._buffer)  # closed within the head
        lines = head.split(b"\n")
        if len(lines) > MAX_HEADERS + 1:
            raise http.client.HTTPException(f"got more than {MAX_HEADERS} headers")
        version, status, reason = _status_line(lines[0])
        fields = {}
        for line in lines[1:]:
            if len(line) > MAX_LINE:
                raise http.client.LineTooLong("header line")
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                value = value.strip()
                if fields.get(name, value) != value:
                    raise http.client.HTTPException("conflicting Content-Length headers")
                fields[name] = value
            elif name in (b"transfer-encoding", b"connection"):
                fields[name] = fields.get(name, b"") + b"," + value.strip()
        return version, status, reason, fields

    def _chunked_body(self):
        chunks = []
        while True:
            size_line = self._read_line()
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise http.client.IncompleteRead(b"".join(chunks)) from None
            if size < 0:
                raise http.client.IncompleteRead(b"".join(chunks))
            if size == 0:
                break
            chunks.append(self._read_exactly(size))
            if self._read_exactly(2) != b"\r\n":
                raise http.client.IncompleteRead(b"".join(chunks))
        while self._read_line() not in (b"\r\n", b"\n", b""):  # trailer fields, then the end
            pass
        return b"".join(chunks)

    def _recv(self):
        data = self.sock.recv(RECV_BYTES)
        self._buffer += data
        return bool(data)

    def _read_line(self):
        """Return the next line with its end (b"" at the end of the connection)."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                if end >= MAX_LINE:
                    raise http.client.LineTooLong("header line")
                line, self._buffer = self._buffer[:end + 1], self._buffer[end + 1:]
                return line
            if len(self._buffer) > MAX_LINE:
                raise http.client.LineTooLong("header line")
            if not self._recv():
                line, self._buffer = self._buffer, b""
                if line:
                    raise http.client.IncompleteRead(line)
                return line

    def _read_exactly(self, size):
        if len(self._buffer) < size:
            parts, have = [self._buffer], len(self._buffer)
            while have < size:
                data = self.sock.recv(max(RECV_BYTES, size - have))
                if not data:
                    raise http.client.IncompleteRead(b"".join(parts), size - have)
                parts.append(data)
                have += len(data)
            self._buffer = b"".join(parts)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _read_to_close(self):
        while self._recv():
            pass
        data, self._buffer = self._buffer, b""
        return data


def _status_line(line):
    if len(line) > MAX_LINE:
        raise http.client.LineTooLong("status line")
    parts = line.decode("iso-8859-1").split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise http.client.BadStatusLine(line.decode("iso-8859-1"))
    status = int(parts[1])
    if not 100 <= status <= 999:
        raise http.client.BadStatusLine(line.decode("iso-8859-1"))
    return parts[0], status, parts[2].strip() if len(parts) > 2 else ""


def _content_length(value):
    try:
        length = int(value)
    except ValueError:
        raise http.client.HTTPException(f"invalid Content-Length {value!r}") from None
    if length < 0:
        raise http.client.HTTPException(f"invalid Content-Length {value!r}")
    return length

