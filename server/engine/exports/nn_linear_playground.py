"""The network trained in the nn.Linear playground, as plain PyTorch: this file needs nothing but torch.

Network: 784 -> 256 sigmoid -> 10 softmax
Trained with adam (lr 0.001, batch 64, 20 epochs, seed 0); loss: CrossEntropyLoss on the logits (self.output(x)).

Input: x of shape (N, 784), floats 0..1 with 1 = ink, a 28x28 digit row by row (MNIST / 255).
forward() returns the probabilities of the digits 0..9, shape (N, 10).

Use it:
    python nn_linear_playground.py model.pt     # loads the checkpoint "Download .pt" gives, predicts a blank image
    python nn_linear_playground.py train DIR    # trains it again with the run's setup on MNIST's files in DIR
                                                # (downloaded there first, checksums verified, when missing),
                                                # then saves model.pt, which the playground's "Upload .pt" takes
or in Python:
    model = load("model.pt")
    probabilities = model(x)
"""
import argparse
import gzip
import hashlib
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# The run's setup, as the playground had it when this file was made.
SETUP = {
    "hidden_sizes": [256],
    "activation": "sigmoid",
    "output": "logits",
    "optimizer": "adam",
    "lr": 0.001,
    "momentum": 0.9,
    "weight_decay": 0.0,
    "batch_size": 64,
    "epochs": 20,
    "seed": 0,
}


class Network(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(784, 256)
        self.output = nn.Linear(256, 10)
    def forward(self, x):
        x = F.sigmoid(self.hidden(x))
        x = F.softmax(self.output(x), dim=1)
        return x


def logits(model, x):
    """forward() without its final softmax: what the loss takes when SETUP["output"] is "logits"."""
    return model.output(F.sigmoid(model.hidden(x)))


def load(path="model.pt"):
    """The network with the checkpoint's weights (weights_only: the file cannot run code)."""
    model = Network()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    model.eval()
    return model


# ---- MNIST's files ----------------------------------------------------------------------------------
# The four official files and their MD5 checksums (the same on every mirror).
MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
TRAIN_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
MIRRORS = ["https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"]
# As the playground's --dataset mnist: 5,000 of the 60,000 training digits held out to validate,
# chosen by a permutation seeded with 0 (the same on every machine).
VALIDATION_SIZE = 5000
SPLIT_SEED = 0


class Refused(Exception):
    """Something this script cannot do, in words for people (printed without a traceback)."""


def md5_of(path):
    digest = hashlib.md5()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(directory, names, mirrors):
    """Each of `names` that is missing or damaged in `directory`, fetched from the first mirror that
    has it: streamed into NAME.part and given its name only once its MD5 checksum is right."""
    for name in names:
        path = directory / name
        if path.is_file() and md5_of(path) == MNIST_FILES[name]:
            continue
        print(f"{name}: {'damaged (wrong checksum), downloading it again' if path.exists() else 'downloading'}", flush=True)
        part = directory / (name + ".part")
        failures = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + name
            digest = hashlib.md5()
            try:
                with urllib.request.urlopen(url, timeout=30) as response, open(part, "wb") as out:
                    while chunk := response.read(1 << 16):
                        out.write(chunk)
                        digest.update(chunk)
                if digest.hexdigest() != MNIST_FILES[name]:
                    raise Refused(f"wrong checksum (MD5 {digest.hexdigest()}, expected {MNIST_FILES[name]})")
            except urllib.error.HTTPError as err:
                failures.append(f"{url}: HTTP {err.code} {err.reason}")
            except urllib.error.URLError as err:
                failures.append(f"{url}: {err.reason}")
            except (Refused, OSError, ValueError) as err:  # a checksum, a timeout, a reset, a bad address
                failures.append(f"{url}: {err}")
            else:
                os.replace(part, path)
                print(f"{name}: downloaded from {mirror}, checksum verified", flush=True)
                break
            finally:
                part.unlink(missing_ok=True)
        else:
            raise Refused(
                f"could not download {name} (is there a network?):\n  " + "\n  ".join(failures) +
                f"\nOr put MNIST's files in {directory} yourself: " + ", ".join(names))


def read_idx(path):
    """An IDX file (gzip'd or not) as a uint8 tensor of its dimensions, checked whole."""
    raw = path.read_bytes()
    try:
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as err:
        raise Refused(f"{path} is not a readable gzip file (truncated or damaged: {err})") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08 or not 1 <= raw[3] <= 3:
        raise Refused(f"{path} is not an MNIST IDX file of bytes (its first bytes are 0x{raw[:4].hex()})")
    header = 4 + 4 * raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(raw[3])]
    count = 1
    for n in dims:
        count *= n
    if len(raw) != header + count:
        raise Refused(f"{path} is truncated or damaged: its header says {header + count:,} bytes, it has {len(raw):,}")
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8).reshape(dims)


def read_digits(directory, names):
    """(images float32 (N, 784) in 0..1, labels int64 (N,)) from an images file and a labels file."""
    images, labels = (read_idx(directory / name) for name in names)
    if images.dim() != 3 or tuple(images.shape[1:]) != (28, 28) or labels.shape != (images.shape[0],):
        raise Refused(f"{names[0]} and {names[1]} are not MNIST digits and their labels "
                      f"(shapes {tuple(images.shape)} and {tuple(labels.shape)})")
    if len(labels) and int(labels.max()) > 9:
        raise Refused(f"{names[1]}: labels must be 0..9, found {int(labels.max())}")
    return images.reshape(len(images), 784).to(torch.float32).div_(255.0), labels.to(torch.int64)


# ---- training, as the playground trains ---------------------------------------------------------------

def make_optimizer(model):
    fused = {"fused": True} if next(model.parameters()).device.type in ("cpu", "cuda") else {}
    if SETUP["optimizer"] == "sgd":
        return torch.optim.SGD(model.parameters(), lr=SETUP["lr"], momentum=SETUP["momentum"],
                               weight_decay=SETUP["weight_decay"], **fused)
    return torch.optim.Adam(model.parameters(), lr=SETUP["lr"], weight_decay=SETUP["weight_decay"], **fused)


def loss_of(model, x, y):
    """(mean loss, logits). With SETUP["output"] == "softmax" the loss takes forward()'s probabilities,
    as the question's code does: cross_entropy then applies a second softmax (it learns slower)."""
    z = logits(model, x)
    scores = F.softmax(z, dim=1) if SETUP["output"] == "softmax" else z
    return F.cross_entropy(scores, y), z


@torch.no_grad()
def evaluate(model, images, labels, batch_size=2048):
    """(mean loss, accuracy) on some digits."""
    model.eval()
    loss_sum, correct = 0.0, 0
    for start in range(0, len(labels), batch_size):
        x, y = images[start:start + batch_size], labels[start:start + batch_size]
        loss, z = loss_of(model, x, y)
        loss_sum += loss.item() * len(y)
        correct += int((z.argmax(1) == y).sum())
    model.train()
    return loss_sum / max(1, len(labels)), correct / max(1, len(labels))


def train(directory, *, epochs, out, train_on="train", mirrors=MIRRORS, device="cpu"):
    """Train the network with SETUP on MNIST's files in `directory`; save its state_dict to `out`."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise Refused(f"{directory} is not a folder")
    directory.mkdir(parents=True, exist_ok=True)
    needed = TEST_FILES if train_on == "test" else TRAIN_FILES + TEST_FILES
    download(directory, needed, mirrors)
    test = read_digits(directory, TEST_FILES)
    if train_on == "test":
        train_set, validation, scored_on = test, None, "after the epoch, on the same digits"
        print("Training on the 10,000 test digits (t10k): a quick try; its scores are on digits it has seen.")
    else:
        images, labels = read_digits(directory, TRAIN_FILES)
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SPLIT_SEED))
        train_set = images[order[VALIDATION_SIZE:]], labels[order[VALIDATION_SIZE:]]
        validation = images[order[:VALIDATION_SIZE]], labels[order[:VALIDATION_SIZE]]
        scored_on = "validation"
    images, labels = (t.to(device) for t in train_set)
    n, batch_size = len(labels), SETUP["batch_size"]

    torch.manual_seed(SETUP["seed"])  # the same seed, so the same first weights as the playground's run
    model = Network().to(device)
    optimizer = make_optimizer(model)
    shuffle = torch.Generator().manual_seed(SETUP["seed"])
    layers = " -> ".join(["784"] + [f"{size} {SETUP['activation']}" for size in SETUP["hidden_sizes"]] + ["10"])
    print(f"Network {layers}; {SETUP['optimizer']}, lr {SETUP['lr']:g}, batch {batch_size}, "
          f"{epochs} epoch{'s' * (epochs != 1)}, seed {SETUP['seed']}, loss on the {SETUP['output']}; "
          f"{n:,} training digits", flush=True)
    model.train()
    for epoch in range(1, epochs + 1):
        started, order = time.perf_counter(), torch.randperm(n, generator=shuffle).to(device)
        loss_sum, correct = 0.0, 0
        for start in range(0, n, batch_size):
            index = order[start:start + batch_size]
            x, y = images[index], labels[index]
            loss, z = loss_of(model, x, y)
            if not torch.isfinite(loss):
                raise Refused(f"training diverged in epoch {epoch}: the loss became {loss.item()} "
                              f"(the learning rate, {SETUP['lr']:g}, is too large for this network)")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(y)
            correct += int((z.argmax(1) == y).sum())
        line = f"epoch {epoch:>{len(str(epochs))}}/{epochs}: train loss {loss_sum / n:.4f}, accuracy {correct / n:.2%}"
        scored = validation if validation is not None else (images, labels)
        val_loss, val_accuracy = evaluate(model, *(t.to(device) for t in scored))
        line += f"; {scored_on}: loss {val_loss:.4f}, accuracy {val_accuracy:.2%} ({time.perf_counter() - started:.1f} s)"
        print(line, flush=True)
    if train_on != "test":
        test_loss, test_accuracy = evaluate(model, *(t.to(device) for t in test))
        print(f"test (the 10,000 t10k digits): loss {test_loss:.4f}, accuracy {test_accuracy:.2%}")
    torch.save({name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}, out)
    print(f"saved {out}: upload it on the playground's page (\"Upload .pt\"), or load it here with load(\"{out}\")")
    return model


def main(argv):
    if argv[:1] == ["train"]:
        parser = argparse.ArgumentParser(prog="python nn_linear_playground.py train",
                                         description="Train the network again with the playground run's setup.")
        parser.add_argument("directory", help="the folder with MNIST's IDX files (downloaded there when missing)")
        parser.add_argument("--epochs", type=int, default=SETUP["epochs"], help=f"default: the run's, {SETUP['epochs']}")
        parser.add_argument("--out", default="model.pt", help="where to save the checkpoint (default: model.pt)")
        parser.add_argument("--train-on", choices=["train", "test"], default="train",
                            help="test: train on the 10,000 t10k digits, a quick try needing only those two files")
        parser.add_argument("--mirror", action="append", help="an MNIST mirror to download from (repeat for several)")
        parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
        options = parser.parse_args(argv[1:])
        if options.epochs < 1:
            parser.error("--epochs: give at least 1")
        try:
            train(options.directory, epochs=options.epochs, out=options.out, train_on=options.train_on,
                  mirrors=options.mirror or MIRRORS, device=options.device)
        except Refused as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        return 0
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    path = argv[0] if argv else "model.pt"
    if not Path(path).is_file():
        print(f"error: no checkpoint at {path} (\"Download .pt\" on the playground's page gives one; "
              "or train one: python nn_linear_playground.py train DIR)", file=sys.stderr)
        return 1
    model = load(path)
    n_parameters = sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        probabilities = model(torch.zeros(1, 784))[0]
    print(f"loaded {n_parameters:,} parameters")
    print("a blank image looks most like", int(probabilities.argmax()),
          "with probability", round(float(probabilities.max()), 3))
    return 0


if __name__ == "__main__":
    status = main(sys.argv[1:])
    if status:  # (no SystemExit on success: runpy.run_path(this file) goes on to use load())
        sys.exit(status)
