"""The PyTorch the page shows runs: the code view (GET /api/code.py) for every setup the playground
builds takes the run's checkpoint with load_state_dict(strict=True) and predicts what `predict`
says; the self-contained export (GET /api/export.py) does the same in a fresh virtualenv that holds
only torch, and trains the run's setup again on MNIST's files, downloading them with checksums,
into a checkpoint the page's upload takes."""
from __future__ import annotations

import functools
import gzip
import hashlib
import itertools
import os
import re
import runpy
import shutil
import socket
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from server.engine import data
from server.engine.exports.script import TEMPLATE, export_source
from server.engine.trainer import Trainer
from server.experiment import ACTIVATIONS, MAX_HIDDEN_LAYERS, TrainConfig
from tests.support.helpers import REPO, SHARED_MNIST
from tests.support.official_digits import SETUPS, TOLERANCE, official_test_digits, predicted, trained

T10K = (data.TEST_IMAGES, data.TEST_LABELS)


def run_python(python, *args, cwd, timeout=600) -> subprocess.CompletedProcess:
    """A fresh interpreter that sees nothing of this repository (its own folder, no PYTHONPATH)."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run([str(python), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def torch_and_what_it_requires() -> list:
    """The installed torch and the distributions it requires (its metadata's Requires-Dist, followed
    down, extras left out): what `pip install torch` puts in a fresh virtualenv."""
    from importlib import metadata

    from packaging.requirements import Requirement

    found, wanted = {}, ["torch"]
    while wanted:
        name = wanted.pop()
        distribution = metadata.distribution(name)
        if distribution.metadata["Name"].lower() in found:
            continue
        found[distribution.metadata["Name"].lower()] = distribution
        for line in distribution.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                wanted.append(requirement.name)
    return list(found.values())


@pytest.fixture(scope="session")
def torch_only_python(tmp_path_factory) -> Path:
    """The python of a new virtualenv holding torch and nothing else: the installed torch and what it
    requires, linked into its site-packages (pip installing the 700 MB wheel again cost 30 s of CPU
    a run, for the same files)."""
    venv = tmp_path_factory.mktemp("torch-only") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = Path(run_python(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                           cwd=venv).stdout.strip())
    for distribution in torch_and_what_it_requires():
        # the top-level names the distribution installed (its packages, modules and .dist-info)
        tops = {Path(str(file)).parts[0] for file in distribution.files if not str(file).startswith("..")}
        for top in tops:
            installed = Path(distribution.locate_file(top))
            if installed.exists() and not (site / top).exists():
                (site / top).symlink_to(installed)
    listed = run_python(python, "-c", "import importlib.util as u; print([u.find_spec(m) is None for m in "
                        "('numpy', 'server', 'onnx', 'keras', 'flask')], u.find_spec('torch') is None)", cwd=venv)
    assert listed.stdout.strip() == "[True, True, True, True, True] False", listed
    return python


# ---- the code view: every setup ---------------------------------------------------------------------

EVERY_SETUP = [{"hidden_sizes": [40, 24, 16, 12][:depth], "activation": activation, "output": output}
               for depth, activation, output in itertools.product(range(1, MAX_HIDDEN_LAYERS + 1), ACTIVATIONS,
                                                                  ("logits", "softmax"))]


def test_the_code_view_of_every_setup_takes_the_runs_checkpoint_and_predicts_what_predict_says(
        engine, app, client, tmp_path):
    assert len(EVERY_SETUP) == 32  # 1-4 hidden layers, 4 activations, 2 outputs
    images = official_test_digits()[0][:500]
    for setup in EVERY_SETUP:
        trained(engine, setup, 3)
        code = client.get("/api/code.py").get_data(as_text=True)
        checkpoint = tmp_path / "model.pt"
        checkpoint.write_bytes(client.get("/api/checkpoint").data)
        namespace: dict = {}
        exec(compile(code, "network.py", "exec"), namespace)  # noqa: S102 - the page's code, run as a learner would
        network = namespace["Network"]()
        network.load_state_dict(torch.load(checkpoint, weights_only=True), strict=True)
        network.eval()

        with torch.no_grad():
            theirs = network(torch.from_numpy(images)).numpy()
        _, probabilities = predicted(app, images)
        np.testing.assert_allclose(theirs, probabilities, rtol=0, atol=TOLERANCE, err_msg=str(setup))


# ---- the self-contained export in a Python with only torch -------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("setup", SETUPS.values(), ids=SETUPS.keys())
def test_the_export_in_a_python_with_only_torch_predicts_what_predict_says(
        engine, app, client, session, tmp_path, torch_only_python, setup):
    trained(engine, setup, 30)
    (tmp_path / "nn_linear_playground.py").write_bytes(client.get("/api/export.py").data)
    (tmp_path / "model.pt").write_bytes(client.get("/api/checkpoint").data)
    images, _ = official_test_digits()
    torch.save(torch.from_numpy(images), tmp_path / "digits.pt")
    script = ("import runpy, torch\n"
              "module = runpy.run_path('nn_linear_playground.py')\n"
              "model = module['load']('model.pt')\n"
              "x = torch.load('digits.pt', weights_only=True)\n"
              "with torch.no_grad():\n"
              "    torch.save({'probabilities': model(x), 'logits': module['logits'](model, x)}, 'out.pt')\n")

    done = run_python(torch_only_python, "-c", script, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = torch.load(tmp_path / "out.pt", weights_only=True)
    logits, probabilities = predicted(app, images)
    np.testing.assert_allclose(out["probabilities"].numpy(), probabilities, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(out["logits"].numpy(), logits, rtol=0, atol=TOLERANCE)

    # and as a command
    done = run_python(torch_only_python, "nn_linear_playground.py", "model.pt", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"loaded {session.config.architecture.parameters:,} parameters" in done.stdout


@pytest.mark.slow
def test_every_setups_export_runs_in_a_python_with_only_torch_and_predicts_what_predict_says(
        engine, app, client, tmp_path, torch_only_python):
    images = official_test_digits()[0][:500]
    torch.save(torch.from_numpy(images), tmp_path / "digits.pt")
    expected = []
    for number, setup in enumerate(EVERY_SETUP):
        trained(engine, setup, 3)
        (tmp_path / f"export{number}.py").write_bytes(client.get("/api/export.py").data)
        (tmp_path / f"model{number}.pt").write_bytes(client.get("/api/checkpoint").data)
        expected.append(predicted(app, images)[1])
    script = ("import runpy, sys, torch\n"
              "x = torch.load('digits.pt', weights_only=True)\n"
              "out = []\n"
              "for number in range(int(sys.argv[1])):\n"
              "    model = runpy.run_path(f'export{number}.py')['load'](f'model{number}.pt')\n"
              "    with torch.no_grad():\n"
              "        out.append(model(x))\n"
              "torch.save(out, 'out.pt')\n")

    done = run_python(torch_only_python, "-c", script, str(len(EVERY_SETUP)), cwd=tmp_path)

    assert done.returncode == 0, done.stderr[-3000:]
    for setup, theirs, ours in zip(EVERY_SETUP, torch.load(tmp_path / "out.pt", weights_only=True), expected):
        np.testing.assert_allclose(theirs.numpy(), ours, rtol=0, atol=TOLERANCE, err_msg=str(setup))


# A setup unlike the default in everything `train` takes from it.
TRAIN_SETUP = {"hidden_sizes": [128, 64, 32], "activation": "relu", "optimizer": "sgd", "lr": 0.05, "momentum": 0.8,
               "weight_decay": 0.0001, "batch_size": 100, "epochs": 1, "seed": 7, "output": "logits"}
EPOCH_LINE = re.compile(r"^epoch 1/1: train loss (\d\.\d{4}), accuracy (\d+\.\d\d)%; "
                        r"after the epoch, on the same digits: loss (\d\.\d{4}), accuracy (\d+\.\d\d)% \(\d+\.\d s\)$")


def copy_t10k(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in T10K:
        shutil.copy(SHARED_MNIST / name, folder / name)
    return folder


@pytest.mark.slow
def test_the_export_trains_the_runs_setup_on_the_official_files_and_the_page_takes_its_checkpoint(
        client, session, tmp_path, torch_only_python):
    session.reset(TRAIN_SETUP)
    (tmp_path / "nn_linear_playground.py").write_bytes(client.get("/api/export.py").data)
    official_test_digits()  # (fails in words when the files are missing)
    copy_t10k(tmp_path / "mnist")

    done = run_python(torch_only_python, "nn_linear_playground.py", "train", "mnist", "--train-on", "test",
                      "--out", "trained.pt", cwd=tmp_path)

    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert "Network 784 -> 128 relu -> 64 relu -> 32 relu -> 10; sgd, lr 0.05, batch 100, 1 epoch, seed 7" in done.stdout
    [epoch] = [line for line in lines if line.startswith("epoch ")]  # the run's setup: 1 epoch
    train_loss, train_accuracy, loss, accuracy = (float(v) for v in EPOCH_LINE.match(epoch).groups())
    assert "saved trained.pt" in lines[-1]
    trained = torch.load(tmp_path / "trained.pt", weights_only=True)

    # The playground's own trainer, on the same digits with the same setup, learns the same weights.
    images, labels = (torch.from_numpy(a) for a in official_test_digits())
    trainer = Trainer(session.config, images, labels)
    stats = trainer.train_batches(100)
    assert trainer.finished and stats.batches == 100
    for name, tensor in trainer.model.state_dict().items():
        torch.testing.assert_close(trained[name], tensor, rtol=0, atol=1e-5)
    assert train_loss == pytest.approx(stats.loss, abs=1e-4) and train_accuracy == pytest.approx(100 * stats.accuracy, abs=0.01)
    after_loss, after_accuracy, _ = trainer.evaluate(images, labels)
    assert loss == pytest.approx(after_loss, abs=1e-4) and accuracy == pytest.approx(100 * after_accuracy, abs=0.01)
    assert accuracy > 50  # it learned (chance: 10%)

    # The page takes the checkpoint it saved.
    answer = client.post("/api/checkpoint", data=(tmp_path / "trained.pt").read_bytes(),
                         content_type="application/octet-stream")
    assert answer.status_code == 200 and answer.get_json()["ok"], answer.get_json()
    for name, tensor in session.trainer.model.state_dict().items():
        assert torch.equal(tensor, trained[name])


# ---- train: MNIST's files, downloaded with checksums ------------------------------------------------

@functools.cache
def script_module() -> dict:
    """The default setup's export (the template), loaded here as a module: its train() is called
    directly for the cases that need no fresh interpreter."""
    return runpy.run_path(str(TEMPLATE))


class Mirror:
    """A real HTTP server on loopback serving a folder, as an MNIST mirror does."""

    def __init__(self, root: Path):
        handler = functools.partial(QuietHandler, directory=str(root))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"


def test_train_downloads_missing_files_verifies_them_and_trains(tmp_path, capsys):
    mirror_root = copy_t10k(tmp_path / "mirror")
    train = script_module()["train"]
    with Mirror(mirror_root) as mirror:
        train(tmp_path / "empty", epochs=1, out=tmp_path / "model.pt", train_on="test", mirrors=[mirror.url])
    printed = capsys.readouterr().out
    assert f"t10k-images-idx3-ubyte.gz: downloaded from {mirror.url}, checksum verified" in printed
    assert all(hashlib.md5((tmp_path / "empty" / n).read_bytes()).hexdigest() == data.MNIST_FILES[n] for n in T10K)
    assert not list((tmp_path / "empty").glob("*.part"))
    assert "epoch 1/1: train loss" in printed and (tmp_path / "model.pt").is_file()


def test_without_a_network_train_says_so_and_what_to_do(tmp_path):
    (tmp_path / "nn_linear_playground.py").write_text(export_source(TrainConfig()))
    done = run_python(sys.executable, "nn_linear_playground.py", "train", "mnist", "--mirror", closed_port_url(),
                      cwd=tmp_path)

    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    message = done.stderr[done.stderr.index("error: "):]
    assert message.startswith("error: could not download train-images-idx3-ubyte.gz (is there a network?):\n  http://127.0.0.1:")
    assert message.rstrip().endswith("Or put MNIST's files in mnist yourself: train-images-idx3-ubyte.gz, "
                                     "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz")
    assert not list((tmp_path / "mnist").iterdir())  # nothing half-written left behind


def test_a_damaged_file_is_fetched_again_and_a_wrong_download_refused(tmp_path, capsys):
    folder = copy_t10k(tmp_path / "mnist")
    images = folder / data.TEST_IMAGES
    images.write_bytes(images.read_bytes()[:-100])  # cut short
    mirror_root = tmp_path / "bad-mirror"
    mirror_root.mkdir()
    (mirror_root / data.TEST_IMAGES).write_bytes(gzip.compress(b"not the digits"))
    train = script_module()["train"]
    with Mirror(mirror_root) as mirror, pytest.raises(script_module()["Refused"]) as refused:
        train(folder, epochs=1, out=tmp_path / "model.pt", train_on="test", mirrors=[mirror.url])
    assert "t10k-images-idx3-ubyte.gz: damaged (wrong checksum), downloading it again" in capsys.readouterr().out
    assert f"{mirror.url}t10k-images-idx3-ubyte.gz: wrong checksum (MD5 " in str(refused.value)
    assert not (tmp_path / "model.pt").exists()


def test_training_files_are_split_as_the_playground_splits_them(tmp_path, capsys, monkeypatch):
    """With the 60,000 training digits the script holds out the playground's seeded 5,000 to
    validate (--dataset mnist's split). The official training files are not on this machine, so the
    t10k files stand in for them here, under their names, with their checksums."""
    module = script_module()
    folder = copy_t10k(tmp_path / "mnist")
    for test_name, train_name in zip(T10K, module["TRAIN_FILES"]):
        shutil.copy(folder / test_name, folder / train_name)
    checksums = {**module["MNIST_FILES"]}
    for test_name, train_name in zip(T10K, module["TRAIN_FILES"]):
        checksums[train_name] = checksums[test_name]
    monkeypatch.setitem(module["train"].__globals__, "MNIST_FILES", checksums)

    model = module["train"](folder, epochs=1, out=tmp_path / "model.pt", mirrors=[closed_port_url()])

    printed = capsys.readouterr().out
    assert "5,000 training digits" in printed  # 10,000 less the 5,000 held out
    assert re.search(r"^epoch 1/1: train loss \d\.\d{4}, accuracy [\d.]+%; validation: loss \d\.\d{4}, accuracy [\d.]+%",
                     printed, re.M)
    assert re.search(r"^test \(the 10,000 t10k digits\): loss \d\.\d{4}, accuracy [\d.]+%$", printed, re.M)
    # the same split as the server's
    x, y = (torch.from_numpy(a) for a in official_test_digits())
    train_index, validation_index = data._holdout(len(y), 5000)
    trainer = Trainer(TrainConfig(epochs=1), x[train_index], y[train_index])
    trainer.train_batches(10_000)
    for name, tensor in trainer.model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], tensor, rtol=0, atol=1e-5)


# ---- the template -----------------------------------------------------------------------------------

def test_the_template_is_the_default_setups_export_and_knows_mnist_as_the_server_does():
    assert export_source(TrainConfig()) == TEMPLATE.read_text()
    module = script_module()
    assert module["MNIST_FILES"] == data.MNIST_FILES
    assert module["MIRRORS"] == data.DEFAULT_MIRRORS
    assert module["SPLIT_SEED"] == data.SPLIT_SEED
    assert module["TRAIN_FILES"] + module["TEST_FILES"] == (data.TRAIN_IMAGES, data.TRAIN_LABELS) + T10K
    source = export_source(TrainConfig(hidden_sizes=[64, 32], activation="tanh", output="softmax", seed=3))
    assert '    "hidden_sizes": [64, 32],\n' in source and '    "seed": 3,\n' in source
    assert "    return model.output(torch.tanh(model.hidden2(torch.tanh(model.hidden(x)))))\n" in source
    assert "Network: 784 -> 64 tanh -> 32 tanh -> 10 softmax\n" in source
