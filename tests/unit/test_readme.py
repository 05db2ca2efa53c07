"""The README says what the code does: its options table lists exactly the flags of
`python -m server --help`, and every path in "What is where" exists."""
from __future__ import annotations

import re

import pytest

from server.__main__ import parse_args
from tests.support.helpers import REPO

README = (REPO / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end != -1 else None]


def test_the_options_table_lists_every_flag_and_only_those(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", capsys.readouterr().out)) - {"--help"}
    table = {line.split("|")[1].strip().strip("`").split()[0] for line in section("Options").splitlines()
             if line.startswith("| `--")}
    assert table == flags


def test_every_path_in_what_is_where_exists():
    paths = re.findall(r"^\| `([\w./-]+)`", section("What is where"), re.M)
    assert len(paths) > 10
    missing = [path for path in paths if not (REPO / path).exists()]
    assert missing == []
