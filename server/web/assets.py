"""The page and its assets over HTTP: the page itself (always asked again, answered 304 while it
is unchanged), its built assets (server/web/bundle.py: named by their content, so cached for a
year and never asked again), and the vendored libraries at their old addresses. Each in the
encoding the browser takes (brotli, gzip, or none), from copies made once at build time (the
page's HTML: once when it changes), never per request; every encoding decodes to the same bytes.

Before it serves the page, the server checks the assets are built from the files on disk (a
look at their sizes and times; a hash when those changed) and rebuilds what is stale, so a
developer who edits a module gets it on the next reload; when they cannot be built, the page
says why in words instead of serving a stale bundle.
"""
from __future__ import annotations

import gzip
import hashlib
import logging
import re
import threading
from collections import OrderedDict
from pathlib import Path

import brotli
from flask import Flask, Response, abort, render_template, request

from . import bundle

log = logging.getLogger(__name__)

ASSET_CACHE = "public, max-age=31536000, immutable"  # a name changes whenever its content does
PAGE_CACHE = "no-cache"  # the page: asked again every time, answered 304 while unchanged
VENDOR_MAX_AGE_S = 3600  # /vendor/: fixed names, so not cached for good
# Encodings a copy exists in, the smallest first (the browser's preference breaks no tie).
ENCODINGS = (("br", ".br"), ("gzip", ".gz"))
MIMETYPES = {".js": "text/javascript", ".css": "text/css", ".map": "application/json"}
ASSET_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
PAGE_COPIES = 4  # rendered pages whose compressed copies are kept (one, unless it changes)


def choose_encoding(accept, available) -> str | None:
    """The encoding to send, of those `available`, by the request's Accept-Encoding (q-values,
    `*`, q=0 refusals); None: the bytes as they are."""
    best, best_quality = None, 0.0
    for name in available:
        quality = accept.quality(name)
        if quality > best_quality:
            best, best_quality = name, quality
    return best


def encoded(response: Response, encoding: str | None, cache_control: str) -> Response:
    if encoding:
        response.headers["Content-Encoding"] = encoding
    response.vary.add("Accept-Encoding")  # caches in between keep one copy per encoding
    response.headers["Cache-Control"] = cache_control
    return response


class PageAssets:
    """The built assets this server serves, kept current with the files they are built from."""

    def __init__(self, root: Path | None = None, out: Path | None = None, node_modules: Path | None = None):
        self.root, self.out = root or bundle.REPO_ROOT, out or bundle.OUT
        self.node_modules = node_modules or self.root / "node_modules"
        self.manifest: dict | None = None
        self.problem: str | None = "the page's assets have not been looked at yet"
        self._files: dict[tuple[str, str], tuple[Path, dict[str, Path]]] = {}
        self._signature = None
        self._lock = threading.Lock()

    def refresh(self) -> str | None:
        """Rebuild what is stale; None when the assets are current, else why not, in words."""
        signature = bundle.stat_signature(self.root)
        if signature == self._signature:
            return self.problem
        with self._lock:
            if signature == self._signature:
                return self.problem
            manifest = bundle.read_manifest(self.out)
            stale = bundle.stale_groups(manifest, self.root, self.out)
            problem = None
            if stale:
                what = "not built" if manifest is None else f"stale ({', '.join(stale)})"
                log.warning("the page's assets are %s: building them now", what)
                try:
                    manifest = bundle.build(stale, root=self.root, out=self.out, node_modules=self.node_modules)
                except bundle.BuildError as err:
                    problem = f"The page's assets are {what} and cannot be built: {err}"
                    log.error("%s", problem)
            self.manifest = manifest if problem is None else None
            self.problem = problem
            self._files = self._index(manifest) if problem is None else {}
            self._signature = signature
            return problem

    def _index(self, manifest: dict) -> dict:
        files = {}
        for built in manifest["groups"].values():
            for folder in [built["dir"], *built.get("kept", [])]:
                path = self.out / folder
                if not path.is_dir():
                    continue
                for file in path.iterdir():
                    if file.suffix in (".br", ".gz") or not ASSET_NAME.fullmatch(file.name):
                        continue
                    copies = {name: file.with_name(file.name + suffix) for name, suffix in ENCODINGS
                              if file.with_name(file.name + suffix).is_file()}
                    files[(folder, file.name)] = (file, copies)
        return files

    def url(self, name: str) -> str:
        """The address of an entry ("main.js", "page.css", "plotly.js") of the current build."""
        for built in (self.manifest or {}).get("groups", {}).values():
            if name in built["entries"]:
                return f"/assets/{built['dir']}/{name}"
        raise KeyError(f"no built asset is called {name!r}")

    def file(self, folder: str, name: str):
        return self._files.get((folder, name))

    def path_of(self, name: str) -> Path | None:
        """The file on disk of a current entry (for /vendor/plotly.min.js)."""
        if self.manifest is None:
            return None
        folder, file = self.url(name).split("/")[2:]
        return self.out / folder / file


class PageCopies:
    """The rendered page and its compressed copies, made once per distinct page."""

    def __init__(self, keep: int = PAGE_COPIES):
        self._copies: OrderedDict[str, dict] = OrderedDict()
        self._keep = keep
        self._lock = threading.Lock()

    def of(self, body: bytes) -> tuple[str, dict]:
        tag = hashlib.sha256(body).hexdigest()[:20]
        with self._lock:
            copies = self._copies.get(tag)
            if copies is not None:
                self._copies.move_to_end(tag)
                return tag, copies
        copies = {"gzip": gzip.compress(body, compresslevel=9, mtime=0),
                  "br": brotli.compress(body, quality=11, mode=brotli.MODE_TEXT)}
        with self._lock:
            self._copies[tag] = copies
            while len(self._copies) > self._keep:
                self._copies.popitem(last=False)
        return tag, copies


class FileBytes:
    """Files' bytes, read once (the built assets are a few MB in all) and answered from memory:
    no file handle per request (a client that hangs up mid-answer leaves none open). A file
    whose size or time changed is read again."""

    def __init__(self, limit: int = 64 * 1024 * 1024):
        self._bytes: dict[Path, tuple[tuple, bytes]] = {}
        self._lock = threading.Lock()
        self._limit = limit

    def __call__(self, path: Path) -> bytes:
        stat = path.stat()
        key = (stat.st_mtime_ns, stat.st_size)
        held = self._bytes.get(path)
        if held is not None and held[0] == key:
            return held[1]
        data = path.read_bytes()
        with self._lock:
            if sum(len(d) for _, d in self._bytes.values()) + len(data) > self._limit:
                self._bytes.clear()  # rebuilt many times (a developer at work): start again
            self._bytes[path] = (key, data)
        return data


def send_copy(read: FileBytes, path: Path, copies: dict[str, Path], etag: str, cache_control: str) -> Response:
    encoding = choose_encoding(request.accept_encodings, [name for name, _ in ENCODINGS if name in copies])
    response = Response(read(copies[encoding] if encoding else path), mimetype=MIMETYPES.get(path.suffix))
    response.set_etag(f"{etag}-{encoding or 'identity'}")
    encoded(response, encoding, cache_control)
    return response.make_conditional(request)


def init_app(app: Flask, playground) -> None:
    settings = playground.settings
    assets = PageAssets(node_modules=settings.node_modules)
    app.extensions["assets"] = assets
    app.add_template_global(assets.url, "asset")
    page_copies = PageCopies()
    read = FileBytes()
    vendor_files = {
        # plotly.js as the page has it (bundle.py: the trace types the page draws)
        "plotly.min.js": lambda: assets.path_of("plotly.js"),
        "socket.io.esm.min.js": lambda: settings.node_modules / bundle.SOCKET_IO,
    }
    if assets.refresh() is None:
        log.info("the page's assets: %s", ", ".join(assets.url(g.entries[0]) for g in bundle.GROUPS))

    @app.get("/")
    def index():
        problem = assets.refresh()
        if problem is not None:
            return Response(problem + "\n", status=500, mimetype="text/plain")
        body = render_template("index.html").encode()
        tag, copies = page_copies.of(body)
        encoding = choose_encoding(request.accept_encodings, [name for name, _ in ENCODINGS])
        response = Response(copies[encoding] if encoding else body, mimetype="text/html")
        response.set_etag(f"{tag}-{encoding or 'identity'}")
        encoded(response, encoding, PAGE_CACHE)
        return response.make_conditional(request)

    @app.get("/assets/<folder>/<name>")
    def asset(folder: str, name: str):
        found = assets.file(folder, name)  # a table of what was built: no user text reaches the filesystem
        if found is None:
            abort(404)
        path, copies = found
        return send_copy(read, path, copies, f"{folder}-{name}", ASSET_CACHE)

    @app.get("/vendor/<name>")
    def vendor(name: str):
        where = vendor_files.get(name)  # a fixed table, as above
        if where is None:
            abort(404)
        assets.refresh()
        path = where()
        if path is None or not path.exists():
            return Response(f"{name} is missing: run `make run` (it installs the npm packages and builds "
                            f"the page's assets){': ' + assets.problem if assets.problem else ''}\n",
                            status=500, mimetype="text/plain")
        copies = {n: path.with_name(path.name + s) for n, s in ENCODINGS if path.with_name(path.name + s).is_file()}
        return send_copy(read, path, copies, f"vendor-{name}-{path.stat().st_mtime_ns}",
                         f"public, max-age={VENDOR_MAX_AGE_S}")
