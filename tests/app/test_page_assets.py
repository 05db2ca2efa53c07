"""The page's assets: built into few files named by their content (server/web/bundle.py),
served compressed or not as the client asks, every encoding the same bytes, cached for good
while the page itself is asked again (server/web/assets.py), and never served stale."""
from __future__ import annotations

import gzip
import json
import re
import shutil

import brotli
import pytest

from server.web import bundle
from server.web.assets import PageAssets
from tests.support.helpers import REPO

JS = REPO / "static" / "js"
IMPORT = re.compile(r'^\s*import\s[^;]*?from\s+"(\.[^"]+)"', re.M | re.S)
IMMUTABLE = "public, max-age=31536000, immutable"


def imported_modules(entry: str = "main.js") -> set[str]:
    seen, todo = set(), [JS / entry]
    while todo:
        path = todo.pop()
        for spec in IMPORT.findall(path.read_text()):
            target = (path.parent / spec).resolve()
            name = target.relative_to(JS).as_posix()
            if name not in seen:
                seen.add(name)
                todo.append(target)
    return seen


def page_asset_urls(html: str) -> list[str]:
    return re.findall(r'(?:href|src)="(/assets/[^"]+)"', html)


class Answer:
    """A response read whole and closed (files are sent from disk)."""

    def __init__(self, response):
        self.status_code, self.headers, self.data = response.status_code, response.headers, response.get_data()
        response.close()

    def text(self) -> str:
        return decoded(self).decode()


def get(client, path: str, **headers) -> Answer:
    return Answer(client.get(path, headers={key.replace("_", "-"): value for key, value in headers.items()}))


def decoded(answer: Answer) -> bytes:
    encoding = answer.headers.get("Content-Encoding")
    return {"br": brotli.decompress, "gzip": gzip.decompress, None: lambda d: d}[encoding](answer.data)


# ---- what is built ---------------------------------------------------------------------------

def test_the_page_asks_for_its_style_its_modules_and_plotly_as_three_built_files(client):
    template = (REPO / "templates" / "index.html").read_text()
    assert "/static/js/" not in template and "url_for('static'" not in template
    html = get(client, "/").text()
    urls = page_asset_urls(html)
    assert sorted(url.rsplit("/", 1)[1] for url in urls) == ["main.js", "page.css", "plotly.js"]
    assert all(re.fullmatch(r"/assets/[0-9a-f]{16}/[\w.-]+", url) for url in urls)
    assert html.count("<script") == 1  # the bundle; Plotly is preloaded and added by lib/plot.js


def test_the_bundle_holds_every_module_the_page_imports_and_its_worker_beside_it():
    manifest = bundle.build()
    page = manifest["groups"]["page"]
    assert {f"static/js/{name}" for name in imported_modules()} <= set(page["inputs"])
    assert f"node_modules/{bundle.SOCKET_IO}" in page["inputs"]  # imported as /vendor/socket.io.esm.min.js
    # The worker the page loads by URL is built beside the bundle, where the URL resolves.
    assert 'new URL("./mosaic-worker.js",import.meta.url)' in (bundle.OUT / page["dir"] / "main.js").read_text()
    assert "mosaic-worker.js" in page["files"]
    style = manifest["groups"]["style"]
    assert {p.relative_to(REPO).as_posix() for p in (REPO / "static" / "css").glob("*.css")} == set(style["inputs"])


def test_plotly_is_built_with_every_trace_type_the_page_draws():
    """The page's Plotly registers scatter (its core) and bundle.PLOTLY_TRACES: any trace type
    named in the page's modules (`type: "heatmap"`) must be one of them."""
    schema = json.loads((REPO / "node_modules" / "plotly.js" / "dist" / "plot-schema.json").read_text())
    trace_types = set(schema["traces"])
    named = set()
    for path in JS.rglob("*.js"):
        named.update(t for t in re.findall(r'\btype:\s*"(\w+)"', path.read_text()) if t in trace_types)
    assert named and named <= {"scatter", *bundle.PLOTLY_TRACES}
    manifest = bundle.build()
    plotly = (bundle.OUT / manifest["groups"]["plotly"]["dir"] / "plotly.js").read_text()
    for trace in bundle.PLOTLY_TRACES:
        assert f'name:"{trace}"' in plotly


def test_a_build_is_the_same_bytes_every_time(tmp_path):
    """Several web processes (several machines) at one commit name every file alike."""
    first = bundle.build()
    again = bundle.build(["page", "style"], out=tmp_path / "assets")
    for group in ("page", "style"):
        assert again["groups"][group]["dir"] == first["groups"][group]["dir"]


# ---- served ----------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["br", "gzip"])
def test_compressed_and_uncompressed_clients_get_the_same_bytes(client, encoding):
    plain_page = get(client, "/", Accept_Encoding="identity")
    packed_page = get(client, "/", Accept_Encoding=f"{encoding}, identity;q=0.5")
    assert plain_page.headers.get("Content-Encoding") is None
    assert packed_page.headers["Content-Encoding"] == encoding
    assert decoded(packed_page) == plain_page.data
    for answer in (plain_page, packed_page):
        assert answer.headers["Cache-Control"] == "no-cache" and answer.headers["ETag"]
        assert answer.headers["Vary"] == "Accept-Encoding"
    for url in page_asset_urls(plain_page.text()):
        plain = get(client, url, Accept_Encoding="identity")
        packed = get(client, url, Accept_Encoding=encoding)
        assert plain.status_code == packed.status_code == 200
        assert plain.headers.get("Content-Encoding") is None and packed.headers["Content-Encoding"] == encoding
        assert len(packed.data) < len(plain.data) / 2, url
        assert decoded(packed) == plain.data, url
        for answer in (plain, packed):
            assert answer.headers["Cache-Control"] == IMMUTABLE and answer.headers["Vary"] == "Accept-Encoding"
        assert plain.headers["ETag"] != packed.headers["ETag"]


def test_a_client_that_accepts_no_compression_gets_none():
    """No Accept-Encoding, a refusal (q=0) or an encoding the server has no copy in: the bytes as they are."""
    from werkzeug.http import parse_accept_header
    from server.web.assets import choose_encoding
    available = ["br", "gzip"]
    assert choose_encoding(parse_accept_header(""), available) is None
    assert choose_encoding(parse_accept_header("identity"), available) is None
    assert choose_encoding(parse_accept_header("deflate"), available) is None
    assert choose_encoding(parse_accept_header("br;q=0, gzip"), available) == "gzip"
    assert choose_encoding(parse_accept_header("gzip;q=0.8, br;q=0.5"), available) == "gzip"
    assert choose_encoding(parse_accept_header("gzip, deflate, br, zstd"), available) == "br"
    assert choose_encoding(parse_accept_header("*"), available) == "br"
    assert choose_encoding(parse_accept_header("*;q=0"), available) is None


def test_the_page_is_asked_again_and_answered_304_while_it_is_unchanged(client):
    first = get(client, "/", Accept_Encoding="gzip")
    again = get(client, "/", Accept_Encoding="gzip", If_None_Match=first.headers["ETag"])
    assert again.status_code == 304 and again.data == b""
    # The ETag names the encoding too: another encoding's copy is not "the same".
    assert get(client, "/", Accept_Encoding="identity", If_None_Match=first.headers["ETag"]).status_code == 200
    url = page_asset_urls(first.text())[0]
    asset = get(client, url, Accept_Encoding="gzip")
    assert get(client, url, Accept_Encoding="gzip", If_None_Match=asset.headers["ETag"]).status_code == 304


@pytest.mark.parametrize("path", ["/assets/0123456789abcdef/main.js", "/assets/../server/app.py",
                                  "/assets/%2e%2e/%2e%2e/etc/passwd", "/assets/x/.lock", "/assets/manifest.json"])
def test_only_what_was_built_is_served(client, path):
    assert get(client, path).status_code == 404


def test_a_compressed_copy_is_not_served_by_its_own_name(client):
    url = page_asset_urls(get(client, "/", Accept_Encoding="identity").text())[0]
    assert get(client, url + ".br").status_code == 404 and get(client, url + ".gz").status_code == 404


# ---- never stale -----------------------------------------------------------------------------

def copy_of_the_sources(tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(REPO / "static", root / "static")
    shutil.copy(REPO / "package-lock.json", root / "package-lock.json")
    (root / "node_modules").symlink_to(REPO / "node_modules")
    return root


@pytest.mark.slow
def test_an_edited_module_is_rebuilt_before_the_page_is_served_again(tmp_path):
    root = copy_of_the_sources(tmp_path)
    out = tmp_path / "assets"
    built = bundle.build(root=root, out=out)  # as `make` would
    assets = PageAssets(root=root, out=out)
    assert assets.refresh() is None
    before = assets.url("main.js")
    assert assets.refresh() is None and assets.url("main.js") == before  # nothing changed: no build
    store = root / "static" / "js" / "store.js"
    store.write_text(store.read_text() + "\nglobalThis.EDITED_FOR_A_TEST = 1;\n")
    assert assets.refresh() is None
    after = assets.url("main.js")
    assert after != before and "EDITED_FOR_A_TEST" in (out / after.split("/")[2] / "main.js").read_text()
    assert assets.url("plotly.js").split("/")[2] == built["groups"]["plotly"]["dir"]  # only what changed
    # The page loaded before the edit still finds its worker: the previous build is kept.
    assert assets.file(before.split("/")[2], "mosaic-worker.js") is not None


@pytest.mark.slow
def test_a_module_that_does_not_build_is_said_in_words_not_served_stale(tmp_path):
    root = copy_of_the_sources(tmp_path)
    out = tmp_path / "assets"
    bundle.build(root=root, out=out)
    assets = PageAssets(root=root, out=out)
    assert assets.refresh() is None
    store = root / "static" / "js" / "store.js"
    store.write_text(store.read_text() + "\nexport const = ;\n")
    problem = assets.refresh()
    assert problem and "cannot be built" in problem and "store.js" in problem
    assert assets.manifest is None  # nothing is served from the stale build
    store.write_text(store.read_text().replace("\nexport const = ;\n", "\n"))
    assert assets.refresh() is None


def test_without_esbuild_the_page_says_what_to_run(tmp_path, monkeypatch, small_dataset):
    """Someone ran `python -m server` without `make`: no npm packages, nothing built."""
    monkeypatch.setattr(bundle, "OUT", tmp_path / "assets")
    from server import create_app
    app = create_app({"testing": True, "data_dir": str(tmp_path / "data"), "device": "cpu",
                      "node_modules": str(tmp_path / "no_node_modules")}, dataset=small_dataset)
    try:
        answer = get(app.test_client(), "/")
        assert answer.status_code == 500
        text = answer.data.decode()
        assert "not built" in text and "make run" in text and "esbuild is not installed" in text
    finally:
        app.extensions["playground"].shutdown()
