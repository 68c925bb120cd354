"""One keep-alive HTTP/1.1 connection: write a request, read its answer with httptools (llhttp).

http.client (the standard library) opens the connection here (TCP_NODELAY, TLS with the
server name checked, the connect timeout); requests and answers then go over the raw socket.
http.client wraps every answer in a new file object and parses its headers with the email
package: several times the CPU of this module. The answer is parsed by httptools, the llhttp
parser that uvicorn uses (status line, headers, Content-Length / chunked / read-to-close
framing): ~20% less client CPU per exchange than the hand-written reader it replaced.

What an answer may be: a status line, headers (at most MAX_HEADERS lines of at most
MAX_LINE bytes, limits llhttp does not set), then a body framed by Content-Length, chunked
transfer coding, or the end of the connection. Interim 1xx answers are skipped. The
exceptions are http.client's own, so callers classify failures as before:
``RemoteDisconnected`` (an OSError: the server closed the connection before answering),
``IncompleteRead`` (the connection ended within the answer, or its body framing is broken),
``BadStatusLine``, ``LineTooLong`` and other ``HTTPException`` (the answer is not HTTP),
``TimeoutError``.

A connection is reused only when its answer ended exactly where the bytes received end and
the server did not ask to close it: bytes past the answer would be read as the next answer
(bare line ends between answers, which llhttp skips, are not). An answer to HEAD has no body
though its headers may announce one, which httptools cannot tell llhttp: its connection is
not reused. llhttp is stricter than http.client in one way that matters: an answer with both
Content-Length and Transfer-Encoding is refused (HTTPException), not read as chunked.
"""
import http.client

import httptools

MAX_LINE = 65536
MAX_HEADERS = 100
RECV_BYTES = 65536
# Where the parser is within the current answer.
BEFORE, HEAD, BODY, COMPLETE = range(4)


class _StopParsing(Exception):
    """Raised from a callback to stop the parser: the answer ended (HEAD) or another begins."""


class Connection:
    """A connected socket with its answer parser and the time it was opened."""

    def __init__(self, sock, host_header, opened_at):
        self.sock = sock
        self.opened_at = opened_at
        self._host_line = f"Host: {host_header}\r\n".encode("latin-1")
        self._parser = httptools.HttpResponseParser(self)
        # Bare LF line ends, as http.client accepts them.
        self._parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=True)
        self._head_only = False
        self._start_answer()

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
        self._parser = None  # the parser holds this object's callbacks: no cycle left behind
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
        self._start_answer()
        self._head_only = method == "HEAD"
        parser, received, past_the_answer = self._parser, 0, False
        while self._state != COMPLETE:
            if self._state < BODY and received > MAX_LINE * 2:
                raise http.client.LineTooLong("header block")
            data = self.sock.recv(RECV_BYTES)
            if not data:
                self._end_of_connection()
                break
            received += len(data)
            try:
                parser.feed_data(data)
            except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
                if self._state != COMPLETE:
                    raise self._failure(exc, data) from None
                past_the_answer = True  # bytes past the answer: another answer, or junk
        reusable = self._keep_alive and not past_the_answer and not self._head_only
        return (self._status, self._reason.decode("iso-8859-1").strip(), b"".join(self._body),
                reusable)

    def _start_answer(self):
        self._state, self._status, self._reason, self._body = BEFORE, 0, b"", []
        self._header_count, self._framed, self._keep_alive = 0, False, False

    def _end_of_connection(self):
        """Complete an answer read to the end of the connection, or say what was cut off."""
        if self._state == BODY and not self._framed:
            self._state = COMPLETE  # not kept alive: llhttp said so for a body without framing
            return
        if self._state == BEFORE:
            raise http.client.RemoteDisconnected("Remote end closed connection without response")
        raise http.client.IncompleteRead(b"".join(self._body))

    def _failure(self, exc, data):
        """The http.client exception for a parser error in the current answer."""
        if isinstance(exc, httptools.HttpParserCallbackError) and isinstance(
                exc.__context__, http.client.HTTPException):
            return exc.__context__  # a limit of this module, raised from a callback
        if isinstance(exc, httptools.HttpParserUpgrade):
            return http.client.HTTPException("the server switched protocols")
        if self._state == BODY:
            return http.client.IncompleteRead(b"".join(self._body))
        if self._status == 0 or isinstance(exc, httptools.HttpParserInvalidStatusError):
            return http.client.BadStatusLine(data.split(b"\n", 1)[0].decode("iso-8859-1"))
        return http.client.HTTPException(f"invalid answer head: {exc}")

    # httptools callbacks

    def on_message_begin(self):
        if self._state == COMPLETE:
            raise _StopParsing()  # another answer begins past this one
        self._state = HEAD

    def on_status(self, reason):
        self._status = self._parser.get_status_code()
        self._reason += reason

    def on_header(self, name, value):
        self._header_count += 1
        if self._header_count > MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {MAX_HEADERS} headers")
        if len(name) + len(value) > MAX_LINE:
            raise http.client.LineTooLong("header line")
        name = name.lower()
        if name == b"content-length" or (
                name == b"transfer-encoding" and b"chunked" in value.lower()):
            self._framed = True

    def on_headers_complete(self):
        self._status = self._parser.get_status_code()
        self._state = BODY
        if self._head_only and not 100 <= self._status < 200:
            self._state = COMPLETE
            raise _StopParsing()  # no body follows, whatever the headers announce

    def on_body(self, data):
        self._body.append(data)

    def on_message_complete(self):
        if 100 <= self._status < 200:  # an interim answer: the real one follows
            self._start_answer()
            return
        self._keep_alive = self._parser.should_keep_alive()
        self._state = COMPLETE
