"""A stand-in for the Hugging Face Hub on 127.0.0.1, for tests of timm weight downloads (no network)."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import threading
from collections.abc import Iterator


class Hub(http.server.BaseHTTPRequestHandler):
    """The Hub as a client sees it: ``resolve`` answers 302 to the CDN with the file's metadata (the LFS sha256
    in X-Linked-Etag, its size, the commit); the CDN serves the bytes. Set ``published`` (resolve path → the
    file the metadata describes) and ``served`` (resolve path → what the CDN actually sends)."""

    published: dict[str, bytes] = {}
    served: dict[str, bytes] = {}

    def _answer(self, body: bool) -> None:
        if not self.headers.get("User-Agent", "").startswith("ftstudio/"):  # like CDNs that refuse Python-urllib
            self.send_error(403)
            return
        if self.path.startswith("/cdn/"):
            data = self.served[self.path.removeprefix("/cdn")]
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)
            return
        file = self.published.get(self.path)
        if file is None:
            self.send_error(404)
            return
        self.send_response(302)
        self.send_header("Location", f"/cdn{self.path}")
        self.send_header("X-Linked-Etag", f'"{hashlib.sha256(file).hexdigest()}"')
        self.send_header("X-Linked-Size", str(len(file)))
        self.send_header("X-Repo-Commit", "a" * 40)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self):  # noqa: N802 (http.server's name)
        self._answer(body=False)

    def do_GET(self):  # noqa: N802
        self._answer(body=True)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serving_hub() -> Iterator[tuple[type[Hub], str]]:
    """(the handler class to fill, the endpoint for HF_ENDPOINT) while a server runs."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Hub, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        Hub.published, Hub.served = {}, {}
