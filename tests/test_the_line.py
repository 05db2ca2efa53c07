"""The line between the tiers holds: the engine (server/engine/) imports no web library, the web
tier (server/web/) imports no torch, directly or through anything it imports."""
from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.helpers import REPO

WEB_LIBRARIES = ("flask", "flask_socketio", "socketio", "engineio", "werkzeug", "gunicorn")


def imported_names(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


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
    modules = loaded("import server.engine.engine, server.engine.process, server.engine.runtime")
    assert "torch" in modules and not modules & set(WEB_LIBRARIES)


@pytest.mark.parametrize("path", sorted((REPO / "bench").glob("*.py")), ids=lambda p: p.name)
def test_no_benchmark_imports_a_test_module(path):
    """What both need lives in bench/shared.py; a benchmark runs without the test suite."""
    assert not [name for name in imported_names(path) if name.split(".")[0] == "tests"]
