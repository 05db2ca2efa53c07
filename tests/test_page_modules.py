"""The page asks for all its modules at once: index.html preloads exactly the modules main.js
imports (directly or not), so no level of imports waits for the one above it, and none is
forgotten when a module is added."""
from __future__ import annotations

import re

from tests.helpers import REPO

JS = REPO / "static" / "js"
IMPORT = re.compile(r'^\s*import\s[^;]*?from\s+"(\.[^"]+)"', re.M | re.S)


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


def test_index_html_preloads_every_module_the_page_imports():
    template = (REPO / "templates" / "index.html").read_text()
    listed = set(re.findall(r'^\s*"([\w/.-]+\.js)",$', template, re.M))
    assert listed == imported_modules()
    assert len(listed) > 30
