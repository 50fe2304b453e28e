"""A Hugging Face Hub on 127.0.0.1 serving model folders from disk: the endpoints huggingface_hub's listing and
snapshot download call (repo info, tree, resolve), with the headers it reads. Records every path requested."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self, repos: dict[str, Path]) -> None:
        self.repos = repos  # repo id -> folder served as its files
        self.requested: list[str] = []

    def files(self, repo: str) -> list[str]:
        folder = self.repos[repo]
        return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())

    def tree(self, repo: str) -> list[dict]:
        entries = []
        for name in self.files(repo):
            data = (self.repos[repo] / name).read_bytes()
            oid = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
            entries.append({"type": "file", "path": name, "size": len(data), "oid": oid})
        return entries


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str], head: bool = False) -> None:
            self.send_response(status)
            for key, value in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(key, value)
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _json(self, value: object) -> None:
            self._send(200, json.dumps(value).encode(), {"Content-Type": "application/json"})

        def _route(self, head: bool) -> None:
            path = unquote(urlparse(self.path).path)
            hub.requested.append(path)
            parts = path.strip("/").split("/")
            if parts[:2] == ["api", "models"] and len(parts) >= 6 and f"{parts[2]}/{parts[3]}" in hub.repos:
                repo = f"{parts[2]}/{parts[3]}"
                if parts[4] == "revision":
                    siblings = [{"rfilename": name} for name in hub.files(repo)]
                    return self._json({"id": repo, "sha": COMMIT, "siblings": siblings, "private": False})
                if parts[4] == "tree":
                    return self._json(hub.tree(repo))
            if len(parts) >= 5 and parts[2] == "resolve" and f"{parts[0]}/{parts[1]}" in hub.repos:
                file = hub.repos[f"{parts[0]}/{parts[1]}"] / "/".join(parts[4:])
                if file.is_file():
                    data = file.read_bytes()
                    etag = f'"{hashlib.sha256(data).hexdigest()}"'
                    return self._send(200, data, {"ETag": etag, "X-Repo-Commit": COMMIT}, head)
            self._send(404, b"{}", {"X-Error-Code": "RepoNotFound", "Content-Type": "application/json"}, head)

        def do_GET(self) -> None:
            self._route(head=False)

        def do_HEAD(self) -> None:
            self._route(head=True)

    return Handler


@contextmanager
def serve(repos: dict[str, Path]) -> Iterator[tuple[str, FakeHub]]:
    """(endpoint, hub) while the server runs on a free port of 127.0.0.1."""
    hub = FakeHub(repos)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hub
    finally:
        server.shutdown()
        server.server_close()
