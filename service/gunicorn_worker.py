"""gunicorn's gthread worker, hardened against slow clients: threads only serve whole requests.

Stock gthread hands a connection to a thread as soon as its first byte arrives; a client that
then trickles its headers or its body (slowloris) holds that thread, and a few dozen such
clients hold them all. Here the worker's event loop reads each request without a thread
(non-blocking reads into a buffer): its headers and a Content-Length body up to
MAX_CONTENT_LENGTH. Only a complete request goes to a thread. A request that is not complete
within READ_TIMEOUT_S gets 408 and the connection is closed. Bodies the event loop does not
collect (chunked, Expect: 100-continue, or over MAX_CONTENT_LENGTH, which the app refuses with
413 unread) are read by the thread under the same total deadline. A body the app left unread
is not drained for seconds: the connection is closed instead.

TLS connections are handed over as in stock gthread (the handshake needs the thread); in the
cluster TLS ends at the ingress, which buffers requests itself.

Two shortcuts in the request loop (gunicorn's own cost was ~0.2 ms of the gateway's CPU per
request): the thread that answered a keep-alive request puts the connection back on the
poller itself, rather than waking the event loop through a pipe to do it (the selector and
the deque take their changes under the GIL, and the connection joins the deque before the
poller can report it); and the liveness heartbeat (a file's mtime, which the arbiter checks
against a 30 s timeout) is written at most once a second, not on every turn of the loop.
"""
import collections
import errno
import queue
import selectors
import socket
import threading
import time
from functools import partial

from gunicorn import util
from gunicorn.workers import gthread

from service.settings import Setting, from_environment

SETTINGS = (
    Setting("READ_TIMEOUT_S", 15.0, "Seconds a client has to send a whole request (headers and "
            "body) to gunicorn; it is read without a worker thread, and a slower one gets 408."),
)
HEADER_END = b"\r\n\r\n"
MAX_HEADER_BYTES = 64 * 1024
UNREAD_BODY_DRAIN_S = 0.2
HEARTBEAT_INTERVAL_S = 1.0
_TIMEOUT_BODY = (b'{"error":{"code":"request_timeout","message":"the request did not arrive in '
                 b'time; send it faster"}}')
TIMEOUT_ANSWER = (b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
                  b"Connection: close\r\nContent-Length: %d\r\n\r\n%s"
                  % (len(_TIMEOUT_BODY), _TIMEOUT_BODY))


class BodyDeadlineSocket:
    """The client socket as the request parser sees it: every recv() shares one deadline."""

    def __init__(self, sock, budget_s):
        self._sock, self._budget_s = sock, budget_s
        self.restart()

    def restart(self):
        self._deadline = time.monotonic() + self._budget_s

    def recv(self, size, *flags):
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("the request body did not arrive in time")
        previous = self._sock.gettimeout()  # gunicorn's own (e.g. its drain deadline) may be tighter
        self._sock.settimeout(remaining if previous is None else min(previous, remaining))
        try:
            return self._sock.recv(size, *flags)
        finally:
            self._sock.settimeout(previous)  # writing the response is not under this deadline

    def __getattr__(self, name):
        return getattr(self._sock, name)


class _Done:
    """A finished request's result in the shape gthread's finish_request reads (a future's)."""

    def __init__(self, result):
        self._result = result

    def cancelled(self):
        return False

    def result(self):
        return self._result


class DaemonPool:
    """A few daemon threads that run lingering closes.

    Not a ThreadPoolExecutor: its threads are joined when the interpreter exits, and a worker
    stopped by SIGINT was seen hanging in that join for good, its idle "linger" thread never
    woken (its master gone, the worker outlived it). A lingering close is best effort: at
    exit it may be cut short.
    """

    def __init__(self, threads, name):
        self.jobs = queue.SimpleQueue()
        for index in range(threads):
            threading.Thread(target=self._run, name=f"{name}_{index}", daemon=True).start()

    def _run(self):
        while True:
            function, args = self.jobs.get()
            try:
                function(*args)
            except Exception:  # noqa: BLE001 (a client that vanished mid-close: nothing to do)
                pass

    def submit(self, function, *args):
        self.jobs.put((function, args))


class LingerElsewhereConn(gthread.TConn):
    """A connection whose lingering close (RFC 9112 9.6: up to 2 s reading what the client still
    sends) runs on a small pool, not on the worker's event loop, which it would stall."""

    closer = None

    def close(self, graceful=False):
        if graceful and self.closer is not None:
            self.sock.setblocking(True)
            self.closer.submit(util.close_graceful, self.sock)
        else:
            super().close(graceful)


class WholeRequestWorker(gthread.ThreadWorker):
    """gthread whose threads start on a request only once it has arrived (see the module)."""

    def init_process(self):
        self.read_timeout = float(from_environment("READ_TIMEOUT_S"))
        self.max_body = int(from_environment("MAX_CONTENT_LENGTH"))
        self.reading_conns = collections.deque()
        self.next_heartbeat = 0.0
        LingerElsewhereConn.closer = DaemonPool(4, "linger")
        super().init_process()

    def notify(self):
        now = time.monotonic()
        if now >= self.next_heartbeat:
            self.next_heartbeat = now + HEARTBEAT_INTERVAL_S
            super().notify()

    def enqueue_req(self, conn):
        self.tpool.submit(self._serve, conn)

    def _serve(self, conn):
        """Answer one request in a thread; re-arm a kept-alive connection from here when safe."""
        try:
            keepalive = self.handle(conn)
            if keepalive is True and self.alive and not conn.parser.unreader.buf.getvalue():
                conn.sock.setblocking(False)
                conn.set_timeout()
                self.keepalived_conns.append(conn)  # before the poller can report it
                self.poller.register(conn.sock, selectors.EVENT_READ,
                                     partial(self.on_client_socket_readable, conn))
                return
        except Exception as exc:  # noqa: BLE001 (the event loop closes the connection)
            self.log.debug("re-arming a kept-alive connection failed: %s", exc)
            try:
                self.keepalived_conns.remove(conn)
            except ValueError:
                pass
            keepalive = False
        self.method_queue.defer(self.finish_request, conn, _Done(keepalive))

    def accept(self, listener):
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = LingerElsewhereConn(self.cfg, client_sock, client_addr, listener.getsockname())
        if self.cfg.is_ssl:
            client_sock.setblocking(True)
            self.enqueue_req(conn)
        else:
            self._collect_request(conn)

    def on_client_socket_readable(self, conn, client):
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        if self.cfg.is_ssl:
            self.enqueue_req(conn)
        else:
            self._collect_request(conn)

    def _collect_request(self, conn):
        conn.sock.setblocking(False)
        conn.request_bytes = bytearray()
        conn.timeout = time.monotonic() + self.read_timeout
        conn.collecting = False
        # A keep-alive connection wakes the loop when its next request is usually whole already:
        # take it at once, and watch the socket (and its deadline) only when more must come.
        self._on_request_bytes(conn, conn.sock)

    def _watch(self, conn):
        if not conn.collecting:
            conn.collecting = True
            self.reading_conns.append(conn)
            self.poller.register(conn.sock, selectors.EVENT_READ,
                                 partial(self._on_request_bytes, conn))

    def _on_request_bytes(self, conn, client):
        try:
            data = conn.sock.recv(MAX_HEADER_BYTES)
        except (BlockingIOError, InterruptedError):
            self._watch(conn)
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        conn.request_bytes += data
        end = conn.request_bytes.find(HEADER_END)
        if end < 0 and len(conn.request_bytes) <= MAX_HEADER_BYTES:
            self._watch(conn)
            return
        # Headers complete (or too long: the parser refuses them without waiting for more).
        if end >= 0 and len(conn.request_bytes) < end + len(HEADER_END) + self._body_to_collect(
                bytes(conn.request_bytes[:end])):
            self._watch(conn)
            return
        if conn.collecting:
            self.poller.unregister(conn.sock)
            self.reading_conns.remove(conn)
            conn.collecting = False
        conn.data_ready = True
        self.enqueue_req(conn)

    def _body_to_collect(self, head):
        """Return how many body bytes the event loop collects before a thread takes over."""
        lines = head.lower().split(b"\r\n")
        fields = dict(line.split(b":", 1) for line in lines[1:] if b":" in line)
        if b"transfer-encoding" in fields or b"expect" in fields:
            return 0
        try:
            length = int(fields.get(b"content-length", b"0").strip())
        except ValueError:
            return 0  # the parser answers 400
        return length if 0 <= length <= self.max_body else 0

    def _drop(self, conn, answer=b""):
        if getattr(conn, "collecting", False):
            conn.collecting = False
            try:
                self.poller.unregister(conn.sock)
            except (OSError, KeyError, ValueError):
                pass
            try:
                self.reading_conns.remove(conn)
            except ValueError:
                pass
        if answer:
            try:
                conn.sock.send(answer)  # best effort, never blocks: the socket is non-blocking
            except OSError:
                pass
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self):
        super().murder_pending()
        now = time.monotonic()
        while self.reading_conns and self.reading_conns[0].timeout <= now:
            conn = self.reading_conns[0]
            self._drop(conn, TIMEOUT_ANSWER if conn.request_bytes else b"")

    def handle(self, conn):
        buffered = getattr(conn, "request_bytes", None)
        if buffered is not None:
            conn.request_bytes = None
            conn.sock.setblocking(True)
            conn.init()
            unreader = conn.parser.unreader
            if not isinstance(unreader.sock, BodyDeadlineSocket):
                unreader.sock = BodyDeadlineSocket(unreader.sock, self.read_timeout)
            unreader.sock.restart()
            unreader.unread(bytes(buffered))
        return super().handle(conn)

    def _keepalive_after(self, conn, keepalive):
        """Keep the connection only if the body the app left unread is drained at once.

        Stock gthread drains it for up to 5 s in the thread; a caller refused (401, 413) in the
        middle of a large upload would hold the thread that long. Closing is cheaper.
        """
        if not keepalive:
            return False
        return bool(conn.parser.finish_body(deadline=time.monotonic() + UNREAD_BODY_DRAIN_S))
