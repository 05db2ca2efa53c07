"""The page's assets, built once: its ES modules bundled into one (with the Web Worker it loads
by URL), its style sheets into one, and Plotly built with only the trace types the page draws,
each group in a folder named by the hash of its content, with gzip and brotli copies made here
(never per request). `make run` and `make test` build them (`python -m server.web.bundle`); the
server checks they are current when it starts and before it serves the page, and rebuilds what
changed (server/web/assets.py), so an edited module is never served stale.

    build/assets/manifest.json            which folder holds each group, and what it was built from
    build/assets/<hash>/main.js, .gz, .br  the page's modules (and socket.io-client) in one module
    build/assets/<hash>/mosaic-worker.js   a worker the page loads by URL, beside the bundle
    build/assets/<hash>/page.css           static/css/page.css and what it imports
    build/assets/<hash>/plotly.js          plotly.js core + the traces the page draws

The bundler is esbuild (npm). Its output is the same for the same inputs, and so are the
compressed copies, so web processes on several machines at one commit name every file alike.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import brotli

from ..settings import REPO_ROOT

log = logging.getLogger(__name__)

STATIC = REPO_ROOT / "static"
OUT = REPO_ROOT / "build" / "assets"
MANIFEST = "manifest.json"
THIS_FILE = Path(__file__).resolve()
KEEP_BUILDS = 3  # folders of each group kept: a page loaded before a rebuild still gets its worker
COMPRESSIBLE = (".js", ".css")  # source maps go out as they are (only developer tools ask for them)
BUILD_TIMEOUT_S = 120

# socket.io-client's ES module build, the file /vendor/socket.io.esm.min.js serves: the page
# imports it by that URL (static/js/socket-early.js), and the bundle takes it from here.
SOCKET_IO = "socket.io-client/dist/socket.io.esm.min.js"

# Plotly with the trace types the page draws (scatter is in the core): plotly.js's own
# dist bundles register many more, and running them cost the first frame 0.4-0.6 s
# (bench/page.py). tests/app/test_page_assets.py checks every trace type the page names is here.
PLOTLY_TRACES = ("bar", "heatmap")


class BuildError(RuntimeError):
    """The assets cannot be built: the words say why and what to do."""


@dataclass(frozen=True)
class Group:
    """What one esbuild run makes: its name, its entry points and what it reads."""
    name: str
    entries: tuple[str, ...]  # the logical names a page asks for ("main.js")
    inputs: tuple[str, ...] = field(default=())  # globs under the repository that it is built from


GROUPS = (
    Group("page", ("main.js",), ("static/js/**/*.js",)),
    Group("style", ("page.css",), ("static/css/**/*.css",)),
    Group("plotly", ("plotly.js",)),
)
SHARED_INPUTS = ("package-lock.json",)  # every group: the npm packages (esbuild, plotly.js, ...)


def esbuild_path(node_modules: Path) -> Path:
    return node_modules / ".bin" / "esbuild"


def input_files(group: Group, root: Path = REPO_ROOT) -> list[Path]:
    files = {root / name for name in SHARED_INPUTS}
    for pattern in group.inputs:
        files.update(root.glob(pattern))
    return sorted(path for path in files if path.is_file())


def fingerprint(group: Group, root: Path = REPO_ROOT) -> str:
    """The hash of everything a group is built from (and of this recipe)."""
    digest = hashlib.sha256(THIS_FILE.read_bytes())
    for path in input_files(group, root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def stat_signature(root: Path = REPO_ROOT) -> tuple:
    """Cheap to take before every page: the inputs' names, sizes and times (and this file's)."""
    files = {THIS_FILE}
    for group in GROUPS:
        files.update(input_files(group, root))
    signature = []
    for path in sorted(files):
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        signature.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(signature)


# ---- the manifest ----------------------------------------------------------------------------

def read_manifest(out: Path = OUT) -> dict | None:
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and isinstance(manifest.get("groups"), dict) else None


def stale_groups(manifest: dict | None, root: Path = REPO_ROOT, out: Path = OUT) -> list[str]:
    """The groups whose build is missing, incomplete or made from other inputs."""
    stale = []
    for group in GROUPS:
        built = (manifest or {}).get("groups", {}).get(group.name)
        if (not built or built.get("fingerprint") != fingerprint(group, root)
                or not all((out / built["dir"] / name).is_file() for name in built.get("files", []))):
            stale.append(group.name)
    return stale


# ---- building --------------------------------------------------------------------------------

def run_esbuild(node_modules: Path, args: list[str], *, stdin: str | None = None, root: Path = REPO_ROOT) -> None:
    esbuild = esbuild_path(node_modules)
    if not esbuild.exists():
        raise BuildError(f"esbuild is not installed ({esbuild} is missing): run `make run` "
                         "(it installs the npm packages and builds the page)")
    try:
        # Paths as they are under the repository (node_modules may be a link to another copy).
        done = subprocess.run([str(esbuild), *args, "--preserve-symlinks", "--log-level=error"], cwd=root, input=stdin, text=True,
                              capture_output=True, timeout=BUILD_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise BuildError(f"esbuild could not run: {err}") from None
    if done.returncode != 0:
        raise BuildError(f"the page's assets do not build (esbuild):\n{done.stderr.strip()}")


# A file the page loads by URL (a Web Worker): `new URL("./name.js", import.meta.url)`.
LOADED_BY_URL = re.compile(r"""new\s+URL\(\s*["'](?P<spec>[^"']+)["']\s*,\s*import\.meta\.url\s*\)""")


def loaded_by_url(root: Path = REPO_ROOT) -> list[str]:
    """The modules the page's modules load by URL (its workers), as entry points of their own
    beside the bundle: the bundle keeps `new URL("./name.js", import.meta.url)` as it is, and
    that resolves next to it, so each must be a file in the same folder as its referrer."""
    found: dict[str, str] = {}
    js = root / "static" / "js"
    for path in sorted(js.rglob("*.js")):
        for match in LOADED_BY_URL.finditer(path.read_text()):
            spec, where = match["spec"], path.relative_to(root).as_posix()
            if not re.fullmatch(r"\./[\w.-]+\.js", spec):
                raise BuildError(f"{where} loads {spec!r} by URL: the bundle puts each module loaded by URL "
                                 "beside itself, so name one in the same folder (\"./name.js\")")
            target = (path.parent / spec).resolve()
            if not target.is_file():
                raise BuildError(f"{where} loads {spec!r} by URL, and {target.relative_to(root)} does not exist")
            name = target.relative_to(root).as_posix()
            if target.name in found and found[target.name] != name:
                raise BuildError(f"two modules loaded by URL share the name {target.name}: "
                                 f"{found[target.name]} and {name}")
            found[target.name] = name
    return sorted(found.values())


def build_page(staging: Path, meta: Path, node_modules: Path, root: Path) -> list[str]:
    entries = ["static/js/main.js", *loaded_by_url(root)]
    paths = {"/vendor/socket.io.esm.min.js": [str(node_modules.absolute() / SOCKET_IO)]}
    run_esbuild(node_modules, [
        *entries, "--bundle", "--format=esm", "--minify", "--sourcemap=linked", "--entry-names=[name]",
        f"--outdir={staging}", f"--metafile={meta}",
        "--tsconfig-raw=" + json.dumps({"compilerOptions": {"baseUrl": ".", "paths": paths}})], root=root)
    return metafile_inputs(meta, root)


def build_style(staging: Path, meta: Path, node_modules: Path, root: Path) -> list[str]:
    run_esbuild(node_modules, [
        "static/css/page.css", "--bundle", "--minify", "--sourcemap=linked", "--entry-names=[name]",
        f"--outdir={staging}", f"--metafile={meta}"], root=root)
    return metafile_inputs(meta, root)


def build_plotly(staging: Path, meta: Path, node_modules: Path, root: Path) -> list[str]:
    traces = ", ".join(f'require("plotly.js/lib/{trace}")' for trace in PLOTLY_TRACES)
    entry = f'var Plotly = require("plotly.js/lib/core");\nPlotly.register([{traces}]);\nmodule.exports = Plotly;\n'
    # As plotly.js's own esbuild config builds its dist bundles (a global `Plotly`); the only
    # style sheet it imports is MapLibre's, for map traces the page does not have.
    run_esbuild(node_modules, [
        "--bundle", "--format=iife", "--global-name=Plotly", "--minify", "--target=es2016",
        "--define:global=window", "--define:define.amd=false", "--loader:.css=empty",
        "--sourcefile=plotly.js", f"--outfile={staging / 'plotly.js'}"], stdin=entry, root=root)
    return ["package-lock.json"]


BUILDERS = {"page": build_page, "style": build_style, "plotly": build_plotly}


def metafile_inputs(path: Path, root: Path) -> list[str]:
    inputs = json.loads(path.read_text())["inputs"]
    return sorted(Path(os.path.normpath(root / name)).relative_to(root).as_posix() for name in inputs)


def portable_maps(folder: Path, root: Path) -> None:
    """Source maps name their sources from the repository's root ("/static/js/main.js", where
    the server serves them), not from wherever this build was written: the same bytes for
    the same inputs, whatever the output folder."""
    for path in folder.glob("*.map"):
        source_map = json.loads(path.read_text())
        source_map["sources"] = [Path(os.path.normpath(folder / name)).relative_to(root).as_posix()
                                 for name in source_map["sources"]]
        source_map["sourceRoot"] = "/"
        path.write_text(json.dumps(source_map, separators=(",", ":")))


def compress(folder: Path) -> None:
    """gzip (level 9) and brotli (quality 11) copies of each text file, where they are smaller."""
    for path in sorted(folder.iterdir()):
        if path.suffix not in COMPRESSIBLE:
            continue
        data = path.read_bytes()
        for suffix, packed in ((".gz", gzip.compress(data, compresslevel=9, mtime=0)),
                               (".br", brotli.compress(data, quality=11, mode=brotli.MODE_TEXT))):
            if len(packed) < len(data):
                path.with_name(path.name + suffix).write_bytes(packed)


def content_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def build_lock(out: Path):
    """One build at a time on this machine (several servers may start at once)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build(groups: list[str] | None = None, *, force: bool = False, root: Path = REPO_ROOT, out: Path = OUT,
          node_modules: Path | None = None) -> dict:
    """Build the groups (default: all) that are stale (or all of them, `force`), write the
    manifest, and return it. Another process may have built them meanwhile: looked at again
    under the lock."""
    node_modules = node_modules or root / "node_modules"
    try:
        return _build(groups or [g.name for g in GROUPS], force, root, out, node_modules)
    except OSError as err:  # a folder that cannot be written, a disk that is full
        raise BuildError(f"the page's assets cannot be written to {out}: {err}") from None


def _build(groups: list[str], force: bool, root: Path, out: Path, node_modules: Path) -> dict:
    with build_lock(out):
        manifest = read_manifest(out) or {"groups": {}}
        stale = stale_groups(manifest, root, out)
        todo = [name for name in groups if force or name in stale]
        for name in todo:
            group = next(g for g in GROUPS if g.name == name)
            started = time.monotonic()
            made_from = fingerprint(group, root)
            staging = Path(tempfile.mkdtemp(prefix=f".staging-{name}-", dir=out))
            meta = staging.with_suffix(".json")
            try:
                inputs = BUILDERS[name](staging, meta, node_modules, root)
                portable_maps(staging, root)
                compress(staging)
                digest = content_hash(staging)
                final = out / digest
                if not final.exists():
                    staging.chmod(0o755)  # readable by a proxy that serves the files itself
                    staging.rename(final)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
                meta.unlink(missing_ok=True)
            previous = manifest["groups"].get(name, {})
            kept = [d for d in [previous.get("dir"), *previous.get("kept", [])] if d and d != digest]
            for old in kept[KEEP_BUILDS - 1:]:
                shutil.rmtree(out / old, ignore_errors=True)
            manifest["groups"][name] = {
                "dir": digest, "fingerprint": made_from, "entries": list(group.entries),
                "files": sorted(p.name for p in final.iterdir()), "inputs": inputs,
                "kept": kept[:KEEP_BUILDS - 1]}
            log.info("built the %s group of the page's assets in %.1f s: build/assets/%s", name,
                     time.monotonic() - started, digest)
        if todo or not (out / MANIFEST).exists():
            staged = out / f".{MANIFEST}.{os.getpid()}"
            staged.write_text(json.dumps(manifest, indent=1, sort_keys=True))
            staged.replace(out / MANIFEST)
        return manifest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.web.bundle", description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="build every group, current or not")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        manifest = build(force=args.force)
    except BuildError as err:
        print(err, file=sys.stderr)
        return 1
    for name, built in sorted(manifest["groups"].items()):
        sizes = ", ".join(f"{f} {(OUT / built['dir'] / f).stat().st_size / 1000:.0f} kB" for f in built["files"]
                          if not f.endswith(".map"))
        print(f"{name}: build/assets/{built['dir']}/ ({sizes})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
