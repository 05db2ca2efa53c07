"""`watch(model, url)`: the user's own network on the playground's page, from the user's own
training loop.

The loop's thread does as little as it can: `run.step()` appends the step's numbers to a list,
and when a snapshot is due by the wall clock (at most `snapshots_per_second`, and no faster
than `max_bytes_per_second` allows) copies each Linear layer's weights (a GPU model's to the
CPU, then), histograms its gradients, and arms forward hooks that histogram the next forward
pass's outputs and then take themselves off. Everything else (the connection, the sending, the
retries) is a background thread's: a server that is not there, slow or restarted costs the loop
nothing, says so in one warning line, and the run resumes on the page when it is back.

Only data crosses: numbers, and weights as int8 rows with a scale per row, after the first
snapshot as deltas from the weights the server holds (wire.py), float32 for the last ones (exact).
"""
from __future__ import annotations

import atexit
import collections
import html
import json
import logging
import math
import re
import secrets
import threading
import time
import weakref
from typing import Optional

import socketio
import torch
from torch import nn

from .structure import image_shapes, linear_layers, module_tree, trace_chain
from .wire import WHOLE_WEIGHTS_PLEASE, WeightsEncoder

log = logging.getLogger("linear_playground")

DEFAULT_URL = "http://127.0.0.1:5000"
SNAPSHOTS_PER_SECOND = 2.0
MAX_BYTES_PER_SECOND = 200_000
SNAPSHOT_OVERHEAD_BYTES = 800  # a layer's histograms and fields in a snapshot, besides its weights
MAX_SNAPSHOT_BYTES = 1_800_000  # one Socket.IO message (the server's bound)
SEND_EVERY_S = 0.25  # steps go out in batches this often
MAX_PENDING_STEPS = 20_000  # kept while the server is away (the newest)
MAX_STEPS_PER_MESSAGE = 2000
# The steps taken while the server was away or full go out in up to this many messages (the
# page makes one curve point per message), so the curve keeps its shape over that stretch too.
CATCH_UP_POINTS = 100
CATCH_UP_MIN_STEPS = 50  # steps per catch-up message at least
HISTOGRAM_BINS = 32
CLOSE_WITHIN_S = 2.0
CONNECT_TIMEOUT_S = 3.0
OPEN_WAIT_S = 5.0  # watch() waits this long at most for the run's key
RETRY_S = (0.5, 1.0, 2.0)  # between tries to reach the server
CALL_TIMEOUT_S = 5.0
HELD_POLL_S = 0.2
FRAME_HEIGHT_PX = 720  # the run's view in a notebook cell: the tiles and the curves in sight


_NONE: dict = {}  # a step with no other numbers (never written to)


def _message_bytes(payload: dict) -> int:
    """What a message carries on the wire: its JSON text and its binary attachments (Socket.IO's
    own framing, a few bytes, aside)."""
    binary = sum(len(value) for value in payload.values() if isinstance(value, (bytes, bytearray)))
    text = json.dumps({key: (None if isinstance(value, (bytes, bytearray)) else value)
                       for key, value in payload.items()}, separators=(",", ":"), default=str)
    return len(text) + binary


def _number(value) -> Optional[float]:
    """A step's number as a float (a 0-d tensor is read once), None when not finite."""
    if isinstance(value, torch.Tensor):
        value = value.detach().item()
    value = float(value)
    return value if math.isfinite(value) else None


def _histogram(tensor: torch.Tensor) -> dict:
    values = tensor.detach().float()
    lo, hi = values.min().item(), values.max().item()
    if not (math.isfinite(lo) and math.isfinite(hi)):
        values = values[torch.isfinite(values)]
        if values.numel() == 0:
            return {"lo": 0.0, "hi": 0.0, "counts": [0] * HISTOGRAM_BINS}
        lo, hi = values.min().item(), values.max().item()
    counts = torch.histc(values, bins=HISTOGRAM_BINS, min=lo, max=hi if hi > lo else lo + 1e-12)
    return {"lo": lo, "hi": hi, "counts": [int(c) for c in counts.cpu().tolist()]}


_NUMBER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
_told_names: set = set()


def _number_name(name: str) -> bool:
    """A name the page charts (letters, digits and _, at most 40): another is left out of what
    is sent, said once (the server would refuse the whole batch)."""
    if _NUMBER_NAME.fullmatch(name):
        return True
    if name not in _told_names and len(_told_names) < 100:
        _told_names.add(name)
        log.warning("linear_playground: the number %r is not sent: a name is letters, digits and _ "
                    "(at most 40), e.g. grad_norm", name[:60])
    return False


class _Snapshot:
    """One snapshot's weights (flat float32, copied in the loop's thread), encoded and sent by the
    background thread."""

    def __init__(self, step: int, values, layers: list[dict], final: bool = False):
        self.step, self.values, self.layers, self.final = step, values, layers, final


class WatchedRun:
    """What watch() returns. `step(loss=..., **numbers)` after each training step; `close()`
    (or a `with` block) at the end. `key` and `link`: the run on the page (None until the server
    answered)."""

    def __init__(self, model: nn.Module, url: str = DEFAULT_URL, *, name: str = "", token: Optional[str] = None,
                 controllable: bool = False, snapshots_per_second: float = SNAPSHOTS_PER_SECOND,
                 max_bytes_per_second: float = MAX_BYTES_PER_SECOND, wait: float = OPEN_WAIT_S,
                 image_shape=None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"watch() needs a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.url = url.rstrip("/")
        self.name = (name or type(model).__name__)[:80]
        self.token = token
        self.controllable = controllable
        self.key: Optional[str] = None
        self.link: Optional[str] = None
        self.shows_network: Optional[bool] = None
        self.why_not: Optional[str] = None  # why the page cannot draw its pictures, in words
        # Whether the page's canvas predicts with the model (a chain that reads an image: 784, 1,024,
        # 3,072 inputs or the image_shape given; the drawing is resampled to it). None: not known yet.
        self.predicts: Optional[bool] = None
        self.step_count = 0
        self.snapshot_step: Optional[int] = None  # the step of the newest weights taken for the page
        self._linears = linear_layers(model)
        if not self._linears:
            raise ValueError(f"{type(model).__name__} has no nn.Linear layer: there is nothing to show")
        self._open = self._open_request()
        self._image_shapes = image_shapes(image_shape, self._linears)  # a refusal in words, before anything starts
        for layer in self._open["layers"]:
            if layer["path"] in self._image_shapes:
                layer["image_shape"] = self._image_shapes[layer["path"]]
        self._snapshot_bytes = sum(layer.weight.numel() + (layer.bias.numel() if layer.bias is not None else 0)
                                   for _, layer in self._linears) * 2
        # int8 rows, deltas after the first (the sender's thread alone uses it)
        self._wire = WeightsEncoder([n for _, layer in self._linears
                                     for n in [layer.in_features] * layer.out_features
                                     + ([layer.out_features] if layer.bias is not None else [])])
        # snapshots_per_second=0: the numbers only, no weights (the page then shows the curves)
        self._interval_s = math.inf if snapshots_per_second <= 0 else 1.0 / snapshots_per_second
        self._next_snapshot_at = 0.0
        # The bytes budget, a token bucket: every message's bytes (steps too) are spent from it and
        # a snapshot is taken only when the bucket holds one; it holds at most one (no burst).
        self._bytes_per_second = float(max_bytes_per_second)
        self._snapshot_cost = self._wire.int8_bytes + SNAPSHOT_OVERHEAD_BYTES * len(self._linears)
        self._tokens, self._tokens_at = float(self._snapshot_cost), time.monotonic()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        # The loop appends, the sender takes from the left: a deque's appends and pops are atomic,
        # so the loop's thread takes no lock per step; past its bound the oldest steps go.
        self._pending_steps: collections.deque = collections.deque(maxlen=MAX_PENDING_STEPS)
        self._unsent: list[tuple[int, Optional[float], dict]] = []  # a batch the server did not take
        self._pending_snapshot: Optional[_Snapshot] = None
        self._activations: dict[str, dict] = {}  # layer path -> histogram of its last hooked forward
        self._hooks: dict = {}  # layer path -> its armed forward hook
        self._connected = False
        self._closing = False
        self._closed = False
        self._held = False
        self._released = 0
        self._passed = 0  # steps let through while held
        self._held_changed = threading.Condition()
        self._warned = False
        self._given_up = False
        self._waiting_for_a_place = False  # refused by a full server: asking again now and then
        self._catch_up_to = 0
        self._catch_up_size: Optional[int] = None
        self._shown = None  # in Jupyter: the cell output that shows this run (updated once it has its link)
        self._first_try = threading.Event()  # the first try to reach the server is over
        self._refusals: set = set()  # refusals already told (each once)
        self._secret = secrets.token_urlsafe(24)  # who this script is to the server (its run's owner)
        self._sio: Optional[socketio.Client] = None
        self.bytes_sent = 0
        self._thread = threading.Thread(target=self._send_loop, name="linear-playground-sender", daemon=True)
        self._thread.start()
        _open_runs.add(self)
        if wait > 0:
            self._first_try.wait(wait)

    # ---- what the server is told at the start -----------------------------------------------------
    def _open_request(self) -> dict:
        chain, activations = None, None
        order, second = trace_chain(self.model, self._linears)
        by_path = dict(self._linears)
        if order is None:
            unfollowed = second
        elif self._snapshot_bytes_of(order, by_path) > MAX_SNAPSHOT_BYTES:
            order, unfollowed = None, (f"its Linear layers' weights ({self._snapshot_bytes_of(order, by_path):,} bytes "
                                       f"as float16) are more than one snapshot carries ({MAX_SNAPSHOT_BYTES:,})")
        else:
            activations, unfollowed = second, None
            chain = {"activations": activations}
            self._linears = [(path, by_path[path]) for path in order]  # the order forward uses them
        layers = [{"path": path, "in_features": layer.in_features, "out_features": layer.out_features,
                   "bias": layer.bias is not None} for path, layer in self._linears]
        return {"name": self.name, "layers": layers, "tree": module_tree(self.model), "chain": chain,
                "unfollowed": unfollowed, "controllable": self.controllable}

    @staticmethod
    def _snapshot_bytes_of(order, by_path) -> int:
        return sum(by_path[p].weight.numel() + (by_path[p].bias.numel() if by_path[p].bias is not None else 0)
                   for p in order) * 2

    # ---- the loop's thread --------------------------------------------------------------------------
    def step(self, loss=None, **numbers) -> None:
        """One training step done: its loss and any other named numbers (accuracy=..., lr=...)."""
        if self._closed:
            return
        self.step_count += 1
        values = {name: _number(value) for name, value in numbers.items() if value is not None} if numbers else _NONE
        self._pending_steps.append((self.step_count, None if loss is None else _number(loss), values))
        if self._snapshots_due:
            now = time.monotonic()
            if now >= self._next_snapshot_at and self._budget_allows(now):
                self._next_snapshot_at = now + self._interval_s
                self._take_snapshot(final=False)
        if self._held and self.controllable:
            self._wait_while_held()

    def _budget_allows(self, now: float) -> bool:
        """Whether the bytes budget holds a snapshot now; if not, when it will (no check before)."""
        with self._lock:
            self._tokens = min(self._snapshot_cost, self._tokens + (now - self._tokens_at) * self._bytes_per_second)
            self._tokens_at = now
            missing = self._snapshot_cost - self._tokens
        if missing <= 0:
            return True
        self._next_snapshot_at = now + missing / self._bytes_per_second
        return False

    def _spent(self, nbytes: int) -> None:
        """(the sender's thread) A message's bytes, counted against the budget."""
        self.bytes_sent += nbytes
        with self._lock:
            self._tokens -= nbytes

    @property
    def _snapshots_due(self) -> bool:
        """Snapshots are taken only while the page can draw them: connected, weights that fit one
        message (the page draws every Linear layer's weights, whether or not it follows the network)."""
        return self._connected and self._snapshot_bytes <= MAX_SNAPSHOT_BYTES and self._interval_s < math.inf

    def _take_snapshot(self, *, final: bool) -> None:
        parts, layers = [], []
        with torch.no_grad():
            for path, layer in self._linears:
                parts.append(layer.weight.detach().reshape(-1))
                if layer.bias is not None:
                    parts.append(layer.bias.detach().reshape(-1))
                grad = layer.weight.grad
                layers.append({"grads": None if grad is None else _histogram(grad),
                               "activations": self._activations.get(path)})
            values = torch.cat(parts).to("cpu", torch.float32).numpy()  # a copy: training goes on
        snapshot = _Snapshot(self.step_count, values, layers, final)
        self.snapshot_step = self.step_count
        with self._lock:
            self._pending_snapshot = snapshot
        if not final:
            self._arm_hooks()
        self._wake.set()

    def _arm_hooks(self) -> None:
        """Histogram each Linear layer's outputs in the next forward pass only: each hook takes
        itself off once it has run (no hook stays on the model between snapshots)."""
        for path, layer in self._linears:
            if path in self._hooks:
                continue

            def record(module, inputs, output, path=path):
                handle = self._hooks.pop(path, None)
                if handle is not None:
                    handle.remove()
                with torch.no_grad():
                    self._activations[path] = _histogram(output)

            self._hooks[path] = layer.register_forward_hook(record)

    def _wait_while_held(self) -> None:
        with self._held_changed:
            while self._held and not self._closed and self._released <= self._passed:
                self._held_changed.wait(HELD_POLL_S)
            if self._held and self._released > self._passed:
                self._passed += 1

    # ---- the end --------------------------------------------------------------------------------------
    def close(self) -> None:
        """The run is finished, on the page too, with its last weights. Returns within 2 s."""
        if self._closed or self._closing:
            return
        deadline = time.monotonic() + CLOSE_WITHIN_S
        if self._connected and self._snapshot_bytes <= MAX_SNAPSHOT_BYTES:
            self._take_snapshot(final=True)
        self._closing = True
        self._wake.set()
        self._thread.join(max(0.0, deadline - time.monotonic() - 0.05))
        self._closed = True
        with self._held_changed:
            self._held_changed.notify_all()
        for handle in list(self._hooks.values()):
            handle.remove()
        self._hooks.clear()
        _open_runs.discard(self)

    def __enter__(self) -> "WatchedRun":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _repr_html_(self) -> str:
        """In a notebook: the run's link, and the run's read-only view in a frame (the server lets
        the pages its --frame-ancestors names frame it: by default notebooks on this machine).
        Never raises: a notebook's output is no place for an error."""
        try:
            if not self.link:
                return f"<p>linear_playground: {html.escape(self.url)} not reached yet; training goes on.</p>"
            address = html.escape(self.url + self.link)
            view = html.escape(self.url + self.link + "&embed=1")
            return (f'<p>Watch <b>{html.escape(self.name)}</b> on the playground: '
                    f'<a href="{address}" target="_blank" rel="noopener">{address}</a></p>'
                    f'<iframe src="{view}" title="{html.escape(self.name)} on the playground" width="100%" '
                    f'height="{FRAME_HEIGHT_PX}" style="border: 1px solid #ccc"></iframe>')
        except Exception:  # never in the way of training
            return "<p>linear_playground: the run's link is not known.</p>"

    def __repr__(self) -> str:
        where = self.url + self.link if self.link else f"{self.url} (not reached yet)"
        return f"<watched run {self.name!r}: {where}>"

    # ---- the background thread --------------------------------------------------------------------
    def _warn(self, words: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning("linear_playground: %s; training goes on, the run resumes on the page when it is back", words)

    def _send_loop(self) -> None:
        tries = 0
        while True:
            closing = self._closing
            if not self._connected:
                reached = self._connect()
                self._first_try.set()
                if not reached:
                    if closing or self._given_up:
                        return
                    self._wake.wait(RETRY_S[min(tries, len(RETRY_S) - 1)])
                    self._wake.clear()
                    tries += 1
                    continue
                tries = 0
            try:
                self._flush(final=closing)
            except (socketio.exceptions.SocketIOError, OSError, _Refused) as err:
                self._lost(err)
                if closing:
                    return
                continue
            if closing:
                self._disconnect()
                return
            self._wake.wait(HELD_POLL_S if self._held else SEND_EVERY_S)
            self._wake.clear()

    def _connect(self) -> bool:
        sio = socketio.Client(reconnection=False)
        # A script is no page: no live-view frames, no broadcasts (the server sends it none of them).
        auth = {"viewer": self._secret, "streams": [], "broadcasts": [], **({"token": self.token} if self.token else {})}
        try:
            sio.connect(self.url, auth=auth, transports=["websocket"], wait_timeout=CONNECT_TIMEOUT_S)
            answer = sio.call("watch:open", {**self._open, "resume": self.key}, timeout=CALL_TIMEOUT_S)
        except Exception as err:  # refused, unreachable, timed out: the loop goes on
            self._drop(sio)
            self._warn(f"cannot reach the playground at {self.url} ({type(err).__name__}: {err})")
            return False
        if not isinstance(answer, dict) or not answer.get("ok"):
            self._drop(sio)
            words = answer.get("error") if isinstance(answer, dict) else answer
            # A full server says "try again": asked again later; any other refusal would come again.
            self._given_up = "try again" not in str(words)
            self._waiting_for_a_place = not self._given_up
            if str(words) not in self._refusals:
                self._refusals.add(str(words))
                log.warning("linear_playground: the playground at %s refused this run: %s; training goes on%s",
                            self.url, words, " without it" if self._given_up else ", asking again now and then")
            return False
        self._sio = sio
        self.key, self.link = answer["run"], answer["link"]
        self.shows_network, self.why_not = answer["shows_network"], answer["why_not"]
        self.predicts = answer.get("predicts", self.shows_network)  # a server before it said so: as the pictures
        if self._warned:
            log.warning("linear_playground: back on the page: %s%s", self.url, self.link)
            self._warned = False
        if self._waiting_for_a_place:  # the one refusal said it would ask again: this is the answer
            log.warning("linear_playground: a place freed, the run is on the page now: %s%s", self.url, self.link)
            self._waiting_for_a_place = False
        self._wire.forget()  # a run opened again may hold other weights: the next snapshot is whole
        self._connected = True
        self._next_snapshot_at = 0.0  # the page gets the weights at once
        self._catch_up_to = self.step_count  # the steps taken until now: sent as several curve points
        self._catch_up_size = None
        self._show_link()
        return True

    def _show_link(self) -> None:
        """The notebook cell that said "not reached yet" shows the link and the run now."""
        shown = self._shown
        if shown is None or shown[1] == self.link:
            return
        try:
            shown[0].update(self)
            self._shown = (shown[0], self.link)
        except Exception:  # never in the way of training
            pass

    @staticmethod
    def _drop(sio) -> None:
        try:
            sio.disconnect()
        except Exception:
            pass

    def _disconnect(self) -> None:
        self._connected = False
        if self._sio is not None:
            self._drop(self._sio)
            self._sio = None

    def _lost(self, err) -> None:
        self._disconnect()
        self._warn(f"lost the playground at {self.url} ({err})")

    def _call(self, event: str, payload: dict) -> dict:
        if self._sio is None or not self._sio.connected:
            raise OSError("not connected")
        timeout = CALL_TIMEOUT_S
        if self._closing:
            timeout = max(0.1, min(timeout, CLOSE_WITHIN_S - 0.5))
        answer = self._sio.call(event, payload, timeout=timeout)
        if not isinstance(answer, dict):
            raise _Refused(f"{event}: no answer")
        if not answer.get("ok"):
            words = str(answer.get("error"))
            if "there is no run" in words:  # the server restarted: open the run again
                raise _Refused(words)
            if WHOLE_WEIGHTS_PLEASE in words:  # a delta it has no base for: whole weights next (not a warning)
                return answer
            if words not in self._refusals:  # told once: the loop goes on either way
                self._refusals.add(words)
                log.warning("linear_playground: the playground refused %s: %s", event, words)
        self._control(answer)
        return answer

    def _control(self, answer: dict) -> None:
        if "held" not in answer:
            return
        with self._held_changed:
            self._held = bool(answer["held"]) and not answer.get("done")
            self._released = max(self._released, int(answer.get("released", 0)))
            self._held_changed.notify_all()

    def _flush(self, *, final: bool) -> None:
        steps, self._unsent = self._unsent, []
        pending = self._pending_steps
        steps.extend(pending.popleft() for _ in range(len(pending)))
        with self._lock:
            snapshot, self._pending_snapshot = self._pending_snapshot, None
        any_steps = bool(steps)
        try:
            while steps:
                size = self._message_size(steps)
                self._send_steps(steps[:size])
                del steps[:size]
        except BaseException:
            self._unsent = steps[-MAX_PENDING_STEPS:]  # sent first once the server is back
            raise
        if snapshot is not None:
            self._send_snapshot(snapshot)
        elif final:
            self._call("watch:close", {"run": self.key})
        elif self._held and not any_steps:
            self._call("watch:control", {"run": self.key})

    def _message_size(self, steps) -> int:
        """How many of `steps` the next message carries: those taken while the server was away
        or full (a backlog) go in up to CATCH_UP_POINTS messages (one curve point each), the
        others in as few as the message size allows."""
        if steps[0][0] > self._catch_up_to:
            return MAX_STEPS_PER_MESSAGE
        if self._catch_up_size is None:  # the backlog's message size, fixed when it starts going out
            backlog = sum(1 for step in steps if step[0] <= self._catch_up_to)
            self._catch_up_size = max(CATCH_UP_MIN_STEPS, math.ceil(backlog / CATCH_UP_POINTS))
        size = self._catch_up_size
        return sum(1 for step in steps[:size] if step[0] <= self._catch_up_to)  # never past the backlog

    def _send_steps(self, steps) -> None:
        names = sorted({name for _, _, numbers in steps for name in numbers if _number_name(name)})[:16]
        payload = {"run": self.key, "steps": [s for s, _, _ in steps], "loss": [loss for _, loss, _ in steps],
                   "numbers": {name: [numbers.get(name) for _, _, numbers in steps] for name in names}}
        self._call("watch:steps", payload)
        self._spent(_message_bytes(payload))

    def _send_snapshot(self, snapshot: _Snapshot) -> None:
        exact = snapshot.final and self._snapshot_bytes * 2 <= MAX_SNAPSHOT_BYTES  # the last weights as they are
        encoded = self._wire.encode(snapshot.values, exact=exact)
        payload = {"run": self.key, "step": snapshot.step, "final": snapshot.final, **encoded.fields,
                   "layers": snapshot.layers}
        answer = self._call("watch:snapshot", payload)
        self._spent(_message_bytes(payload))
        if answer.get("ok"):
            self._wire.taken(encoded, snapshot.step)
        elif WHOLE_WEIGHTS_PLEASE in str(answer.get("error")):
            self._wire.forget()
            self._next_snapshot_at = 0.0  # whole weights at the next step


class _Refused(Exception):
    """The server no longer has the run (it restarted): connect and open it again."""


def watch(model: nn.Module, url: str = DEFAULT_URL, *, name: str = "", token: Optional[str] = None,
          controllable: bool = False, image_shape=None, **options) -> WatchedRun:
    """Show `model` on the playground at `url` while your own loop trains it: call `run.step(loss=...)`
    after each step and `run.close()` at the end (or use `with watch(...) as run:`).

    `image_shape`: how the first Linear layer's inputs read as an image, (channels, height, width)
    with 1 or 3 channels (3: colour, channel-first as torch flattens (3, H, W)) or (height, width),
    when they are not 784 (28×28), 1,024 (32×32) or 3,072 (32×32 colour); or {layer path: shape}
    for any Linear layers. Its neurons are then drawn as tiles, else as rows."""
    run = WatchedRun(model, url, name=name, token=token, controllable=controllable, image_shape=image_shape,
                     **options)
    _show_in_notebook(run)
    return run


def _show_in_notebook(run: WatchedRun) -> None:
    """In Jupyter (a kernel already loaded IPython), the run under the cell: its link and its view,
    or, until the server answered, a line that says so (updated once it has)."""
    import sys
    if "ipykernel" not in sys.modules:
        return
    try:
        from IPython.display import display
        link = run.link  # what the output shows (the server may answer while it is displayed)
        run._shown = (display(run, display_id=True), link)
        run._show_link()  # the server answered in between
    except Exception:  # never in the way of training
        pass


_open_runs: "weakref.WeakSet[WatchedRun]" = weakref.WeakSet()


@atexit.register
def _close_at_exit() -> None:
    """A script that ends without close(): its runs are finished on the page all the same."""
    for run in list(_open_runs):
        run.close()
