"""Proxies the functional tests put between meter-export and real services.

- :class:`TcpProxy` in front of PostgreSQL or MariaDB: ``cut()`` drops every
  live connection and refuses new ones (the listening socket is closed, so a
  connect gets ECONNREFUSED, as with a stopped service); ``restore()`` listens
  again on the same port.  The machine's database services are never touched.
- :class:`FaultProxy` in front of the real Gnocchi or Ceilometer API: each
  request is forwarded, then with probability ``p`` (seeded RNG) the answer is
  replaced by one fault; a ``mutate`` hook may rewrite real answers first.

Both listen on 127.0.0.1 only, on a free port, in daemon threads.
"""

import collections
import http.client
import http.server
import itertools
import random
import select
import socket
import struct
import threading
import time
import urllib.parse

HOST = "127.0.0.1"
_LINGER_RST = struct.pack("ii", 1, 0)


def _reset(sock):
    """Close with a TCP RST instead of a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    except OSError:
        pass
    sock.close()


# -- TCP ------------------------------------------------------------------------


class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``upstream`` (host, port) until cut."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.port = None
        self.accepted = 0
        self._listener = None
        self._live = set()
        self._lock = threading.Lock()
        self._cut = threading.Event()
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        self._listen(0)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, name="tcp-proxy", daemon=True)
        self._thread.start()
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def url_for(self, url):
        """``url`` (an SQLAlchemy URL text) pointed at this proxy."""
        import sqlalchemy as sa

        return sa.engine.make_url(url).set(host=HOST, port=self.port).render_as_string(hide_password=False)

    def _listen(self, port):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
        sock.listen(64)
        self._listener = sock

    def cut(self):
        """Drop every live connection (RST) and refuse new ones."""
        self._cut.set()
        with self._lock:
            live, self._live = self._live, set()
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        for sock in live:
            _reset(sock)

    def restore(self):
        """Accept connections again, on the same port."""
        deadline = time.monotonic() + 10
        while True:
            try:
                self._listen(self.port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self._cut.clear()

    def stop(self):
        self._stop.set()
        self.cut()
        if self._thread is not None:
            self._thread.join(5)

    def _accept_loop(self):
        while not self._stop.is_set():
            listener = self._listener
            if listener is None:
                time.sleep(0.05)
                continue
            try:
                ready, _, _ = select.select([listener], [], [], 0.1)
                if not ready:
                    continue
                client, _ = listener.accept()
            except (OSError, ValueError):
                continue  # closed by cut()
            self._open(client)

    def _open(self, client):
        try:
            server = socket.create_connection(self.upstream, timeout=10)
            server.settimeout(None)
        except OSError:
            _reset(client)
            return
        with self._lock:
            if self._cut.is_set():
                _reset(client)
                server.close()
                return
            self._live |= {client, server}
            self.accepted += 1
        threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, a, b):
        peers = {a: b, b: a}
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 1.0)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                self._live -= {a, b}
            for sock in (a, b):
                try:
                    sock.close()
                except OSError:
                    pass


# -- HTTP -----------------------------------------------------------------------

FAULTS = ("http500", "http503", "slow", "reset", "truncated", "short_read", "html")
HTML_BODY = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "te", "upgrade"}
MAX_BODY = 256 * 1024 * 1024


class Request(collections.namedtuple("Request", "method path body")):
    """What the client asked for; ``text`` is path and body, for matching."""

    @property
    def text(self):
        return urllib.parse.unquote(self.path) + "\n" + self.body.decode("utf-8", "replace")


class FaultProxy:
    """HTTP proxy to ``upstream`` (a base URL) that injects faults.

    :param p: probability that an answer is replaced by a fault.
    :param faults: the kinds used, taken in turn each time a fault fires (so a
        run of a few faults covers every kind); see FAULTS.
    :param slow_seconds: how long a "slow" answer waits before it is sent;
        make it longer than the client's [source] timeout.
    :param seed: seed of the RNG deciding which requests fail.

    ``mutate``, when set, is called as ``mutate(request, status, body)`` for
    every real answer and returns ``None`` (leave it) or ``(status, body)``.
    ``log`` lists ``(request path, fault or None)`` per request.
    """

    def __init__(self, upstream, p=0.0, faults=FAULTS, slow_seconds=3.0, seed=0, mutate=None):
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname, parsed.port or 80)
        self.p = p
        self.slow_seconds = min(slow_seconds, 30.0)  # bounded: a test never hangs on us
        self.mutate = mutate
        self.log = []
        self._faults = itertools.cycle(faults)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._server = None

    @property
    def endpoint(self):
        return "http://%s:%d" % (HOST, self._server.server_address[1])

    def start(self):
        self._server = _Server((HOST, 0), _make_handler(self))
        threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True).start()
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def injected(self):
        return collections.Counter(fault for _, fault in self.log if fault)

    def _pick_fault(self, path):
        with self._lock:
            fault = next(self._faults) if self.p and self._rng.random() < self.p else None
            self.log.append((path, fault))
        return fault

    def forward(self, request, headers):
        """(status, headers, body) of the real server."""
        conn = http.client.HTTPConnection(*self.upstream, timeout=120)
        try:
            conn.request(request.method, request.path, body=request.body or None, headers=headers)
            resp = conn.getresponse()
            body = resp.read(MAX_BODY)
            kept = [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP]
            return resp.status, kept, body
        finally:
            conn.close()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64


def _make_handler(proxy):
    class Handler(_Handler):
        pass

    Handler.proxy = proxy
    return Handler


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    proxy = None

    def log_message(self, *args):
        pass

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(self.command, self.path, self.rfile.read(min(length, MAX_BODY)))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        status, resp_headers, body = self.proxy.forward(request, headers)
        if self.proxy.mutate is not None and status < 300:
            changed = self.proxy.mutate(request, status, body)
            if changed is not None:
                status, body = changed
        fault = self.proxy._pick_fault(request.path)
        if fault is None:
            self._send(status, resp_headers, body)
        else:
            getattr(self, "_fault_" + fault)(status, resp_headers, body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    def _send(self, status, headers, body, length=None):
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _json_error(self, status):
        body = b'{"description": "injected fault", "title": "Service Unavailable"}'
        self._send(status, [("Content-Type", "application/json")], body)

    def _fault_http500(self, *_):
        self._json_error(500)

    def _fault_http503(self, *_):
        self._json_error(503)

    def _fault_slow(self, status, headers, body):
        time.sleep(self.proxy.slow_seconds)
        try:
            self._send(status, headers, body)
        except OSError:
            pass  # the client gave up first, as intended

    def _fault_reset(self, *_):
        self.close_connection = True
        _reset(self.connection)

    def _fault_truncated(self, status, headers, body):
        # A complete HTTP answer whose JSON stops half way.
        self._send(200, headers, body[: max(1, len(body) // 2)])

    def _fault_short_read(self, status, headers, body):
        # The connection drops in the middle of the body.
        self.close_connection = True
        self._send(200, headers, body[: max(1, len(body) // 2)], length=len(body) + 1)
        _reset(self.connection)

    def _fault_html(self, *_):
        self._send(502, [("Content-Type", "text/html")], HTML_BODY)
