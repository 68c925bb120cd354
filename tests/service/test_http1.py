"""The keep-alive HTTP/1.1 exchange against a real socket server that answers with given bytes.

Every framing an answer may use, the failures callers classify, and when a connection may be
reused. Budget: < 1 s.
"""
import http.client
import socket
import threading

import pytest

from service import http1


class ScriptedServer:
    """A TCP server in a thread: for each request it reads, it sends the next scripted answer."""

    def __init__(self, answers, close_after=False):
        self.answers, self.close_after, self.requests = list(answers), close_after, []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        conn, _ = self._listener.accept()
        with conn:
            buffer = b""
            for answer in self.answers:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                self.requests.append((head, buffer[:length]))
                buffer = buffer[length:]
                conn.sendall(answer)
            if not self.close_after:
                conn.recv(1)  # hold the connection open until the client closes it

    def connect(self):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        connection.connect()
        return http1.Connection.open(connection, opened_at=0.0)

    def close(self):
        self._listener.close()
        self._thread.join(timeout=2)


@pytest.fixture
def serve():
    servers = []

    connections = []

    def start(*answers, close_after=False):
        server = ScriptedServer(answers, close_after)
        servers.append(server)
        connections.append(server.connect())
        return server, connections[-1]

    yield start
    for connection in connections:
        connection.close()
    for server in servers:
        server.close()


OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\": [1]}\n"


def test_a_request_is_written_once_with_host_length_and_headers(serve):
    server, connection = serve(OK)
    answer = connection.exchange("POST", "/v1/models/m:predict", b'{"x": 1}',
                                 {"Content-Type": "application/json", "X-Request-ID": "r1"})
    assert answer == (200, "OK", b'{"a": [1]}\n', True)
    head, body = server.requests[0]
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /v1/models/m:predict HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.port}" in lines and "Content-Length: 8" in lines
    assert "X-Request-ID: r1" in lines and body == b'{"x": 1}'
    connection.close()


def test_a_keep_alive_connection_carries_several_exchanges(serve):
    server, connection = serve(OK, OK.replace(b"200 OK", b"404 Not Found"))
    assert connection.exchange("GET", "/a", None, {})[:2] == (200, "OK")
    assert connection.exchange("GET", "/b", None, {})[:2] == (404, "Not Found")
    assert [request[0].split(b"\r\n")[0] for request in server.requests] == [
        b"GET /a HTTP/1.1", b"GET /b HTTP/1.1"]
    assert b"content-length" not in server.requests[0][0].lower(), "no body, no length"


@pytest.mark.parametrize("answer, body, reusable", [
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nabcd\r\n2\r\nef\r\n0\r\n"
     b"Trailer: x\r\n\r\n", b"abcdef", True),
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", b"ok", False),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", b"ok", False),
    (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", b"ok", True),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", b"ok", True),
    (b"HTTP/1.1 204 No Content\r\n\r\n", b"", True),
    (b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", b"ok", True),  # bare LF line ends
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokJUNK", b"ok", False),  # bytes past the answer
    (OK + OK, b'{"a": [1]}\n', False),  # a second answer past the first
])
def test_answer_framings(serve, answer, body, reusable):
    _, connection = serve(answer)
    assert connection.exchange("GET", "/", None, {})[2:] == (body, reusable)


@pytest.mark.parametrize("head", [b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n"])
def test_an_answer_without_length_is_read_to_the_end_of_the_connection(serve, head):
    _, connection = serve(head + b"\r\nall of it", close_after=True)
    assert connection.exchange("GET", "/", None, {})[2:] == (b"all of it", False)


def test_an_answer_to_head_has_no_body_and_its_connection_is_not_reused(serve):
    _, connection = serve(b"HTTP/1.1 200 Fine Thanks\r\nContent-Length: 20\r\n\r\n")
    assert connection.exchange("HEAD", "/", None, {}) == (200, "Fine Thanks", b"", False)


@pytest.mark.parametrize("answer, error", [
    (b"", http.client.RemoteDisconnected),
    (b"garbage\r\n\r\n", http.client.BadStatusLine),
    (b"HTTP/1.1 abc OK\r\n\r\n", http.client.BadStatusLine),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", http.client.IncompleteRead),
    (b"HTTP/1.1 200 OK\r\nContent-Le", http.client.IncompleteRead),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nok", http.client.HTTPException),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", http.client.HTTPException),
    (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n", http.client.HTTPException),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", http.client.IncompleteRead),
    (b"HTTP/1.1 100 Continue\r\n\r\n", http.client.RemoteDisconnected),
    (b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70000 + b"\r\n\r\n", http.client.LineTooLong),
    (b"HTTP/1.1 200 OK\r\n" + b"X: " + b"y" * 140000, http.client.LineTooLong),  # no end of head
])
def test_broken_answers_raise_http_clients_exceptions(serve, answer, error):
    _, connection = serve(answer, close_after=True)
    with pytest.raises(error):
        connection.exchange("GET", "/", None, {})


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
])
def test_an_ambiguous_or_upgraded_answer_is_not_http_to_the_caller(serve, answer):
    """Not IncompleteRead: the upstream client counts these as bad answers, not a lost server."""
    _, connection = serve(answer, close_after=True)
    with pytest.raises(http.client.HTTPException) as raised:
        connection.exchange("GET", "/", None, {})
    assert type(raised.value) is http.client.HTTPException


def test_remote_disconnected_is_an_os_error_as_callers_expect():
    assert issubclass(http.client.RemoteDisconnected, OSError)


def test_a_header_value_with_a_line_break_is_refused_before_sending(serve):
    server, connection = serve(OK)
    with pytest.raises(ValueError):
        connection.exchange("GET", "/", None, {"X-Request-ID": "a\r\nInjected: 1"})
    assert connection.exchange("GET", "/", None, {})[0] == 200
    assert len(server.requests) == 1
