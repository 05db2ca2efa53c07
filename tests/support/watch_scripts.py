"""The user's side of the watch tests: training scripts of the user's own, as a person writes
them, run as subprocesses against a real server with the client installed from client/ (pip),
not imported from this repository. Each script prints one JSON line at the end (its run's key
and link, its steps, how long close() took) and saves its model's final state_dict."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.helpers import REPO

# The models, as users write them; the tests rebuild them from the same text to compare.
MODELS = {
    # The question's network: self.hidden / self.output, softmax in forward.
    "question": '''
class Network(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(784, 256)
        self.output = nn.Linear(256, 10)

    def forward(self, x):
        x = F.sigmoid(self.hidden(x))
        x = F.softmax(self.output(x), dim=1)
        return x

def make_model():
    return Network()
''',
    # Three Linear layers and ReLU in an nn.Sequential, flattening the image first.
    "sequential": '''
def make_model():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                         nn.Linear(64, 10))
''',
    # 32x32 colour images (CIFAR's shape, flattened channel-first) and named numbers besides the
    # loss: the learning rate of a schedule and the gradient's norm.
    "colour": '''
INPUTS = 3 * 32 * 32

def make_model():
    return nn.Sequential(nn.Flatten(), nn.Linear(INPUTS, 32), nn.ReLU(), nn.Linear(32, 10))

def extra_numbers(step, model, opt):
    return {"lr": opt.param_groups[0]["lr"],
            "grad_norm": sum(p.grad.norm() ** 2 for p in model.parameters()).sqrt().item()}

def schedule(step, opt):
    for group in opt.param_groups:
        group["lr"] = 1e-3 if step < 60 else 5e-4
''',
    # 32x32 grey images, and a 100-input layer the user says is a 10x10 image (else rows).
    "grey": '''
INPUTS = 32 * 32

WATCH_OPTIONS = {"image_shape": {"2": (10, 10)}}  # the user says: layer 2's 100 inputs read as 10x10

def make_model():
    return nn.Sequential(nn.Linear(INPUTS, 100), nn.Tanh(), nn.Linear(100, 10))
''',
    # 32x32 colour images the user says are (3, 32, 32): the canvas predicts with the drawing
    # resampled to 32x32, the same grey drawing in each channel.
    "colour_said": '''
INPUTS = 3 * 32 * 32

WATCH_OPTIONS = {"image_shape": (3, 32, 32)}

def make_model():
    return nn.Sequential(nn.Flatten(), nn.Linear(INPUTS, 48), nn.Sigmoid(), nn.Linear(48, 10))
''',
    # Inputs that are no image and wider than a picture's row (5,000 features): rows folded into lines.
    "wide": '''
INPUTS = 5000

def make_model():
    return nn.Sequential(nn.Linear(INPUTS, 4), nn.ReLU(), nn.Linear(4, 10))
''',
    # A forward the page cannot follow: a skip connection.
    "residual": '''
class Skip(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(784, 64)
        self.mid = nn.Linear(64, 64)
        self.out = nn.Linear(64, 10)

    def forward(self, x):
        h = F.relu(self.inp(x))
        h = h + F.relu(self.mid(h))
        return self.out(h)

def make_model():
    return Skip()
''',
}

PRELUDE = '''
import torch
import torch.nn.functional as F
from torch import nn
'''

# The user's loop: synthetic 28x28 "images" whose label a fixed random teacher decides, so the
# loss goes down; paced so the run lasts a few seconds of wall clock (snapshots are by the clock).
SCRIPT = PRELUDE + '''
import json, sys, time
from linear_playground import watch

{model}

INPUTS = globals().get("INPUTS", 784)
url, out, steps, pause_s, controllable = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5] == "1"
snapshots_to = sys.argv[6] if len(sys.argv) > 6 else ""  # a folder: the weights of each snapshot's step
torch.manual_seed(0)
model = make_model()
teacher = torch.randn(INPUTS, 10)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
run = watch(model, url, name="my own {kind}", controllable=controllable, **globals().get("WATCH_OPTIONS", {{}}))
print(json.dumps({{"opened": run.key, "link": run.link, "shows_network": run.shows_network, "why_not": run.why_not}}),
      flush=True)
for i in range(steps):
    if "schedule" in globals():
        schedule(i, opt)
    x = torch.rand(64, INPUTS)
    y = (x @ teacher).argmax(dim=1)
    out_ = model(x)
    loss = F.cross_entropy(out_, y)
    opt.zero_grad(); loss.backward(); opt.step()
    run.step(loss=loss.item(), accuracy=(out_.argmax(dim=1) == y).float().mean().item(),
             **(extra_numbers(i, model, opt) if "extra_numbers" in globals() else {{}}))
    if snapshots_to and run.snapshot_step == run.step_count:  # the weights the page was just sent
        torch.save(model.state_dict(), f"{{snapshots_to}}/{{run.step_count}}.pt")
    if i % 50 == 0:
        print(json.dumps({{"step": i + 1, "key": run.key}}), flush=True)
    time.sleep(pause_s)
torch.save(model.state_dict(), out)
started = time.monotonic()
run.close()
print(json.dumps({{"key": run.key, "link": run.link, "steps": steps, "close_s": time.monotonic() - started,
                  "shows_network": run.shows_network, "why_not": run.why_not, "predicts": run.predicts}}), flush=True)
'''


def model_source(kind: str) -> str:
    return PRELUDE + MODELS[kind]


def make_model(kind: str, state_path: Path | None = None):
    """The user's model, built from the same text the script used (with its saved weights)."""
    import torch

    namespace: dict = {}
    exec(model_source(kind), namespace)  # noqa: S102 (the tests' own text)
    model = namespace["make_model"]()
    if state_path is not None:
        model.load_state_dict(torch.load(state_path, weights_only=True))
    return model.eval()


def install_client(target: Path) -> Path:
    """`pip install ./client` into a folder of its own (no build isolation: offline), from a copy of
    client/ (setuptools writes its build folders beside the sources)."""
    source = target.parent / "client-source"
    shutil.copytree(REPO / "client", source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, cwd=target.parent,
                   capture_output=True, timeout=300)
    return target


def start_script(kind: str, url: str, workdir: Path, client: Path, *, steps: int, pause_s: float = 0.01,
                 controllable: bool = False, snapshots_to: Path | None = None) -> subprocess.Popen:
    """The user's script as a process of its own, outside this repository, with the installed client."""
    script = workdir / f"train_{kind}.py"
    script.write_text(SCRIPT.format(model=MODELS[kind], kind=kind))
    environment = {**os.environ, "PYTHONPATH": str(client), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(script), url, str(workdir / f"{kind}.pt"), str(steps), str(pause_s),
                             "1" if controllable else "0", *([str(snapshots_to)] if snapshots_to else [])],
                            cwd=workdir, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(process: subprocess.Popen, timeout: float = 120.0) -> tuple[list[dict], str]:
    """The script's JSON lines and its standard error, once it has ended (it must end well)."""
    stdout, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"the script failed ({process.returncode}): {stderr[-3000:]}"
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")], stderr


def key_of(process: subprocess.Popen, timeout: float = 120.0) -> str:
    """The run's key, from the script's lines (watch() waits at most 5 s for it: on a busy machine
    the key comes with a later step's line)."""
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        if line.startswith("{"):
            said = json.loads(line)
            key = said.get("opened") or said.get("key")
            if key:
                return key
    raise AssertionError(f"the script never said its run's key: {process.stderr.read()[-2000:] if process.poll() is not None else ''}")
