"""The line between the tiers holds: the engine (server/engine/) imports no web library, the web
tier (server/web/) imports no torch, directly or through anything it imports; the two never
import each other, and the line itself (server/link/) imports neither. Each process role loads
only its own side: `--role engine` no web library, the web tier no torch."""
from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.support.helpers import REPO

WEB_LIBRARIES = ("flask", "flask_socketio", "socketio", "engineio", "werkzeug", "gunicorn")


def imported_names(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def server_modules_imported(path):
    """The server modules a file imports, relative imports resolved: "server.engine.runtime"."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names = [module] if node.module else [f"{module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        yield from (name for name in names if name.split(".")[0] == "server")


def reaches(path, folder: str) -> list:
    return [name for name in server_modules_imported(path) if name.startswith(f"server.{folder}")]


@pytest.mark.parametrize("path", sorted((REPO / "server" / "link").rglob("*.py")), ids=lambda p: p.name)
def test_the_line_imports_neither_the_engine_nor_the_web_tier(path):
    assert not reaches(path, "engine") and not reaches(path, "web")
    assert not [name for name in imported_names(path) if name.split(".")[0] in WEB_LIBRARIES + ("torch",)]


@pytest.mark.parametrize("path", sorted((REPO / "server" / "engine").rglob("*.py")), ids=lambda p: p.name)
def test_the_engine_never_imports_the_web_tier(path):
    assert not reaches(path, "web")


@pytest.mark.parametrize("path", sorted((REPO / "server" / "web").rglob("*.py")), ids=lambda p: p.name)
def test_the_web_tier_never_imports_the_engine(path):
    assert not reaches(path, "engine")


@pytest.mark.parametrize("path", sorted((REPO / "server" / "engine").rglob("*.py")), ids=lambda p: p.name)
def test_no_engine_module_imports_a_web_library(path):
    assert not [name for name in imported_names(path) if name.split(".")[0] in WEB_LIBRARIES]


@pytest.mark.parametrize("path", sorted((REPO / "server" / "web").rglob("*.py")), ids=lambda p: p.name)
def test_no_web_module_imports_torch(path):
    assert not [name for name in imported_names(path) if name.split(".")[0] == "torch"]


def loaded(code: str) -> set:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"],
                         cwd=REPO, capture_output=True, text=True, timeout=120, check=True).stdout
    return set(out.split())


def test_the_web_tier_loads_no_torch_even_through_what_it_imports():
    modules = loaded("import server.web.app, server.web.serve, server.link.redis_router")
    assert "flask" in modules and "torch" not in modules


def test_the_engine_loads_no_web_library_even_through_what_it_imports():
    modules = loaded("import server.engine.engine, server.engine.process, server.engine.runtime, "
                     "server.engine.redis_engine, server.engine.entry")
    assert "torch" in modules and not modules & set(WEB_LIBRARIES)


def test_the_engine_role_loads_no_web_library():
    # `python -m server --role engine` as far as it goes without a Redis (it says so and stops),
    # then what it loads to build the engine.
    modules = loaded("from server.__main__ import main\n"
                     "assert main(['--redis', 'redis://127.0.0.1:1/0', '--role', 'engine']) == 2\n"
                     "import server.engine.runtime, server.engine.engine")
    assert {"torch", "redis"} <= modules and not modules & set(WEB_LIBRARIES)


def test_the_web_role_and_its_entry_point_load_no_torch():
    # What `python -m server` loads to serve pages (its engines run in processes of their own).
    modules = loaded("import server.__main__, server.engine.entry, server.web.app, server.web.serve, "
                     "server.link.redis_router\n"
                     "from server.engine.entry import LocalEngines\n"
                     "from server.settings import Settings\n"
                     "assert len(LocalEngines().pipe_starters(Settings(engines=2))) == 2")
    assert "flask" in modules and "torch" not in modules


@pytest.mark.parametrize("path", sorted((REPO / "bench").glob("*.py")), ids=lambda p: p.name)
def test_no_benchmark_imports_a_test_module(path):
    """What both need lives in bench/shared.py; a benchmark runs without the test suite."""
    assert not [name for name in imported_names(path) if name.split(".")[0] == "tests"]
