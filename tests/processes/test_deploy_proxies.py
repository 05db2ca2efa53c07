"""docs/deploy.md's proxies, as written there, in front of a real playground: Debian's nginx with
the documented site and HAProxy with the documented backend (installed by `make test`), their
addresses swapped for local ones. Through each: the page and its built assets keep their
encodings, validators and cache headers (every encoding the same bytes), a browser's reload takes
every asset from its cache, and the page's socket connects."""
from __future__ import annotations

import gzip
import re
import shutil
import socket
import subprocess
import time

import brotli
import pytest
import requests

from tests.support.browser import INTERACTIVE, TIMEOUT_MS, ServerLog, open_interactive
from tests.support.helpers import REPO, free_port

DEPLOY = REPO / "docs" / "deploy.md"
IMMUTABLE = "public, max-age=31536000, immutable"


def documented(language: str) -> str:
    """The one code block of `language` in docs/deploy.md."""
    blocks = re.findall(rf"```{language}\n(.*?)```", DEPLOY.read_text(), re.S)
    assert len(blocks) == 1, f"docs/deploy.md should have one ```{language} block"
    return blocks[0]


def need(program: str) -> str:
    path = shutil.which(program) or shutil.which(program, path="/usr/sbin:/usr/local/sbin")
    if path is None:
        pytest.fail(f"{program} is missing: `make test` installs Debian's nginx and haproxy (apt-get install -y nginx haproxy)")
    return path


def wait_for_port(port: int, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited: {process.stdout.read() if process.stdout else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port}")


def start_nginx(tmp_path, backend: int, port: int) -> subprocess.Popen:
    nginx = need("nginx")
    site = documented("nginx")
    site, upstreams = re.subn(r"server 10\.0\.0\.\d+:\d+", f"server 127.0.0.1:{backend}", site)
    assert upstreams == 4
    site = site.replace("listen 80;", f"listen 127.0.0.1:{port};")
    (tmp_path / "site.conf").write_text(site)
    # Debian's /etc/nginx/nginx.conf, its http settings (gzip on among them), with this test's
    # paths; the site is included as Debian includes sites-enabled/.
    (tmp_path / "nginx.conf").write_text(f"""
user root;
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{ worker_connections 768; }}
http {{
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    gzip on;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    include {tmp_path}/site.conf;
}}
""")
    command = [nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr  # `nginx -t` accepts the documented site
    process = subprocess.Popen([*command, "-g", "daemon off;"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for_port(port, process, "nginx")
    return process


def start_haproxy(tmp_path, backend: int, port: int) -> subprocess.Popen:
    haproxy = need("haproxy")
    config = documented("haproxy")
    config = config.replace("bind 10.0.0.20:80", f"bind 127.0.0.1:{port}")
    config, servers = re.subn(r"10\.0\.0\.\d+:\d+", f"127.0.0.1:{backend}", config)
    assert servers == 4
    path = tmp_path / "haproxy.cfg"
    path.write_text(config)
    checked = subprocess.run([haproxy, "-c", "-f", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr  # `haproxy -c` accepts it
    process = subprocess.Popen([haproxy, "-db", "-f", str(path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for_port(port, process, "haproxy")
    # Its health checks (GET /healthz) have found the playground up.
    deadline = time.monotonic() + 20
    while requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, "HAProxy found no playground up behind it (its health check failed)"
        time.sleep(0.3)
    return process


PROXIES = {"nginx": start_nginx, "haproxy": start_haproxy}


@pytest.fixture(params=sorted(PROXIES))
def proxy(request, live_server, tmp_path):
    port = free_port()
    process = PROXIES[request.param](tmp_path, live_server.port, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


def raw(session: requests.Session, url: str, **headers) -> requests.Response:
    """An answer as it came (not decoded): its bytes in `.body`."""
    answer = session.get(url, headers={k.replace("_", "-"): v for k, v in headers.items()}, stream=True, timeout=30)
    answer.body = answer.raw.read(decode_content=False)
    answer.close()
    return answer


def decoded(answer) -> bytes:
    encoding = answer.headers.get("Content-Encoding")
    return {"br": brotli.decompress, "gzip": gzip.decompress, None: lambda data: data}[encoding](answer.body)


def test_through_the_documented_proxies_the_assets_keep_their_encodings_and_cache_headers(proxy):
    # A session keeps HAProxy's cookie as a browser does (a response that sets it is marked
    # private: the documented `nocache`).
    session = requests.Session()
    plain = raw(session, proxy + "/", Accept_Encoding="identity")
    assert plain.status_code == 200 and "Content-Encoding" not in plain.headers
    html = plain.body.decode()
    assets = re.findall(r'(?:href|src)="(/assets/[^"]+)"', html)
    assert len(assets) == 3
    for path in ["/", *assets]:
        for encoding in ("br", "gzip"):
            packed = raw(session, proxy + path, Accept_Encoding=encoding)
            assert packed.status_code == 200 and packed.headers["Content-Encoding"] == encoding, (path, packed.headers)
            assert packed.headers["Vary"] == "Accept-Encoding"
            same = raw(session, proxy + path, Accept_Encoding="identity")
            assert decoded(packed) == same.body, path
            cache = packed.headers["Cache-Control"]
            if path == "/":
                assert "no-cache" in cache  # (HAProxy may add "private" where it sets its cookie)
            else:
                assert cache == IMMUTABLE
            again = raw(session, proxy + path, Accept_Encoding=encoding, If_None_Match=packed.headers["ETag"])
            assert again.status_code == 304, path


def test_through_the_documented_proxies_a_reload_takes_every_asset_from_the_cache(proxy, live_server, browser):
    log = ServerLog(live_server.app)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        open_interactive(page, proxy + "/")
        assert any(r["path"].startswith("/assets/") for r in log.take())
        page.reload(timeout=TIMEOUT_MS)
        page.wait_for_function(INTERACTIVE, polling="raf", timeout=TIMEOUT_MS)
        page.wait_for_load_state("networkidle", timeout=TIMEOUT_MS)
        again = [r for r in log.take() if r["path"] != "/healthz"]  # (HAProxy's own health checks)
        assert not [r for r in again if r["path"].startswith("/assets/")], again
        assert any(r["path"].startswith("/socket.io/") for r in again)  # the socket goes through the proxy
        assert len(again) <= 6, [r["path"] for r in again]
    finally:
        context.close()
