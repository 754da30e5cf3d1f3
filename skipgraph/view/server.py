"""The local server behind ``skipgraph view``: the standard library's ``http.server``, bound to
127.0.0.1, answering loopback clients only.

``GET /`` is the page; ``POST /api/spec`` takes ``{"text": SPEC, "input": "1x1x256x256"}`` and
answers the page's data for that text (what ``analyse`` returns). Nothing the text says is run:
``analyse`` only loads and validates it as a spec file would be. A request from another address,
or naming another host (``Host:``, a DNS-rebinding page), is refused with 403.
"""
from __future__ import annotations

import ipaddress
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

__all__ = ["ViewServer", "is_loopback", "MAX_BODY"]

MAX_BODY = 1 << 20  # bytes: a spec is a few kB
HOST = "127.0.0.1"


def is_loopback(address: str) -> bool:
    """Whether a client address is this machine (127.0.0.0/8, ::1, ::ffff:127.x)."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


class ViewServer(ThreadingHTTPServer):
    """Serves ``page`` (HTML text) and answers edits with ``analyse(text, input) -> data``.

    ``port`` 0 takes a free port (``server.port`` says which).
    """

    daemon_threads = True

    def __init__(self, page: Callable[[], str], analyse: Callable[[str, str], dict[str, Any]],
                 port: int = 0, quiet: bool = True):
        self.page, self.analyse, self.quiet = page, analyse, quiet
        super().__init__((HOST, port), _Handler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A browser that went away mid-answer is no error; anything else is printed."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """socketserver's hook, before a request is handled: loopback clients only."""
        return is_loopback(str(client_address[0]))


class _Handler(BaseHTTPRequestHandler):
    server: ViewServer

    def _allowed(self) -> bool:
        host = (self.headers.get("Host") or "").rsplit(":", 1)
        if not is_loopback(self.client_address[0]) or host[0] not in (HOST, "localhost") \
                or (len(host) == 2 and host[1] != str(self.server.port)):
            self._send(403, "text/plain", b"skipgraph view answers this machine only\n")
            return False
        return True

    def do_GET(self) -> None:
        if not self._allowed():
            return
        if self.path in ("/", "/index.html"):
            self._send(200, "text/html; charset=utf-8", self.server.page().encode("utf-8"))
        else:
            self._send(404, "text/plain", b"not found\n")

    def do_POST(self) -> None:
        if not self._allowed():
            return
        if self.path != "/api/spec":
            self._send(404, "text/plain", b"not found\n")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self._send(413, "text/plain", b"a spec of at most 1 MiB\n")
            return
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            text, shape = str(body.get("text", "")), str(body.get("input", ""))
        except (ValueError, AttributeError):
            self._send(400, "text/plain", b"expected JSON {\"text\": ..., \"input\": ...}\n")
            return
        try:
            data = self.server.analyse(text, shape)
        except Exception as exc:  # a fault of ours: say so on the page, keep serving
            data = {"diagnostics": [{"code": "internal", "line": 0, "column": 0,
                                     "text": f"error: the view failed: {exc!r}"}],
                    "svg": None, "facts": None, "drawn": False, "editable": True}
        self._send(200, "application/json", json.dumps(data).encode("utf-8"))

    def _send(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the stdlib's name)
        if not self.server.quiet:
            sys.stderr.write(f"view: {self.address_string()} {format % args}\n")
