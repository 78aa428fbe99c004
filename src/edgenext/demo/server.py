"""A local static server for a demo site, with the headers that make the page cross-origin isolated.

ONNX Runtime Web runs its WebAssembly kernels on several threads only where ``SharedArrayBuffer``
exists, that is in a cross-origin isolated page: one served with ``Cross-Origin-Opener-Policy:
same-origin`` and ``Cross-Origin-Embedder-Policy: require-corp``. Python's ``http.server`` sends
neither (the page then runs on one thread and says so); this one sends both.
"""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path
from typing import Callable, Optional, Union

#: what every response carries
ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
}


class IsolatedHandler(http.server.SimpleHTTPRequestHandler):
    """``SimpleHTTPRequestHandler`` with the isolation headers, the types a site serves and no caching
    (a rebuilt site is seen at once), logging nothing unless ``verbose``."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",
                      ".js": "text/javascript", ".wasm": "application/wasm", ".onnx": "application/octet-stream",
                      ".json": "application/json"}
    verbose = False

    def end_headers(self) -> None:
        for name, value in ISOLATION_HEADERS.items():
            self.send_header(name, value)
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        if self.verbose:
            super().log_message(format, *args)


def make_server(folder: Union[str, Path], port: int = 8000, host: str = "127.0.0.1",
                verbose: bool = False) -> http.server.ThreadingHTTPServer:
    """A threading HTTP server for ``folder`` on ``host:port`` (0: a free port), not yet serving."""
    root = Path(folder)
    if not (root / "index.html").is_file():
        raise ValueError(f"{root}: no index.html; build a site first (edgenext demo --no-serve --output {root})")
    handler = functools.partial(type("Handler", (IsolatedHandler,), {"verbose": verbose}), directory=str(root))
    try:
        return http.server.ThreadingHTTPServer((host, port), handler)
    except OSError as err:
        raise OSError(f"cannot serve on {host}:{port} ({err.strerror or err}); choose another --port (0: any free one)") from None


def server_url(server: http.server.HTTPServer) -> str:
    """The address a browser opens for ``server``."""
    host, port = server.server_address[:2]
    return f"http://{'localhost' if host in ('127.0.0.1', '0.0.0.0', '') else host}:{port}/"


def serve_in_background(folder: Union[str, Path], port: int = 0, host: str = "127.0.0.1"
                        ) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``folder`` from a daemon thread; ``(server, url)``: call ``server.shutdown()`` when done."""
    server = make_server(folder, port, host)
    threading.Thread(target=server.serve_forever, name="edgenext-demo-server", daemon=True).start()
    return server, server_url(server)


def serve(folder: Union[str, Path], port: int = 8000, host: str = "127.0.0.1", *, announce: Optional[Callable[[str], None]] = print,
          verbose: bool = False) -> None:
    """Serve ``folder`` until interrupted, announcing its URL first."""
    server = make_server(folder, port, host, verbose=verbose)
    if announce is not None:
        announce(f"serving {Path(folder)} at {server_url(server)} (cross-origin isolated; Ctrl+C stops)")
    try:
        server.serve_forever()
    finally:
        server.server_close()
