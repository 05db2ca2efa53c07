"""The engine's side of issue 12, with no web: the replay keeps a run's weights at points spread
evenly over the whole run (the first kept, thinned as it grows, within its memory bound) and
answers with that step's weights; class polls take one anonymous answer per viewer and reveal
from the shared run; every lesson step's answer is computed from the live network or a real run.
Real digits, real torch, no mocks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from server.engine.engine import Engine
from server.engine.lesson import STEPS, TRAINED_STEPS
from server.engine.replay import REPLAY_BUDGET_BYTES, Replay, capacity_for, point_bytes
from server.errors import UserError
from server.experiment import TrainConfig
from server.engine.run import TrainingRun
from tests.support.helpers import subset, wait_for


@pytest.fixture
def tiny_dataset(small_dataset):
    return subset(small_dataset, 400, 100)


@pytest.fixture
def engine(tiny_dataset, tmp_path):
    messages = []
    engine = Engine(tiny_dataset, data_dir=tmp_path, publish=messages.append, pace=None)
    engine.messages = messages
    yield engine
    engine.close()


def hidden_weight(run) -> np.ndarray:
    return run.model.hidden.weight.detach().numpy().copy()


def pixels_of(dataset, index=0) -> bytes:
    return dataset.validation.images[index].numpy().astype("<f4").tobytes()


# ---- the replay --------------------------------------------------------------------------------------

def test_the_replay_keeps_the_first_weights_and_thins_evenly_as_the_run_grows(tiny_dataset):
    run = TrainingRun(tiny_dataset, config=TrainConfig(hidden_sizes=[16], epochs=200), pace=2000)
    replay = Replay(run, points=20)
    run.features = [replay]
    first = hidden_weight(run)
    try:
        run.start()
        wait_for(lambda: run.step_count >= 400, timeout=60, what="400 steps")
        run.pause()
        points = replay.points()
        steps = [p.step for p in points]
        assert steps[0] == 0 and np.allclose(points[0].weights.layers[0][0], first, atol=1e-3)
        assert 10 <= len(points) <= 20  # never more than the capacity, at least half of it
        assert steps == sorted(set(steps)) and steps[-1] == run.step_count  # the whole run, to now
        gaps = np.diff(steps[:-1])  # the newest point is wherever the run stands
        assert replay.stride >= 16 and gaps.min() >= replay.stride and gaps.max() <= 2 * replay.stride
    finally:
        run.close()


def test_the_replay_bound_holds_the_default_network_at_60_points_or_more():
    sizes = TrainConfig().architecture.sizes
    capacity = capacity_for(sizes)
    assert capacity // 2 + 1 >= 60  # after thinning, 61 points remain
    assert capacity * point_bytes(sizes) <= REPLAY_BUDGET_BYTES
    assert capacity_for((784, 2048, 2048, 2048, 2048, 10)) >= 2  # the biggest network: fewer, never none


def test_a_new_run_starts_a_new_replay(tiny_dataset):
    run = TrainingRun(tiny_dataset, config=TrainConfig(hidden_sizes=[16]), pace=None)
    replay = Replay(run, points=20)
    run.features = [replay]
    try:
        run.step(20, wait_s=30)
        run.reset({"seed": 3})
        points = replay.points()
        assert [p.step for p in points] == [0] and points[0].weights.run_id == run.run_id
        assert np.allclose(points[0].weights.layers[0][0], hidden_weight(run), atol=1e-3)
    finally:
        run.close()


def test_replay_frames_and_predictions_are_those_of_the_earlier_weights(engine, tiny_dataset):
    run = engine.part().run
    run.step(40, wait_s=60)
    early = engine.command("replay:frame", {"step": 0})["frame"]
    late = engine.command("replay:frame", {"step": run.step_count})["frame"]
    assert early["step"] == 0 and late["step"] == run.step_count and early["live_step"] == run.step_count
    assert early["weights"]["hidden"]["data"] != late["weights"]["hidden"]["data"]  # the tiles differ
    assert early["curve"] is None and late["curve"]["step"] <= late["step"]
    assert len(late["distributions"]["tensors"]) == 2 and len(late["distributions"]["tensors"][0]["steps"]) > 1
    assert len(early["distributions"]["tensors"][0]["steps"]) == 1

    pixels = pixels_of(tiny_dataset)
    then = engine.command("replay:predict", {"step": 0, "pixels": pixels})
    now = engine.command("replay:predict", {"step": run.step_count, "pixels": pixels})
    assert then["step"] == 0 and now["step"] == run.step_count
    first = engine.part().replay.points()[0].float32()
    network = torch.nn.functional.softmax(
        torch.from_numpy(first.layers[1][0]) @ torch.sigmoid(torch.from_numpy(first.layers[0][0])
                                                             @ torch.from_numpy(np.frombuffer(pixels, "<f4").copy())
                                                             + torch.from_numpy(first.layers[0][1]))
        + torch.from_numpy(first.layers[1][1]), dim=0)
    assert np.allclose(then["probabilities"], network.numpy(), atol=1e-5)
    assert not np.allclose(then["probabilities"], now["probabilities"], atol=1e-3)


# ---- class polls ----------------------------------------------------------------------------------------

def poll_messages(engine):
    return [m["payload"]["poll"] for m in engine.messages if m["topic"] == "poll"]


def test_a_poll_takes_one_anonymous_answer_per_viewer_and_reveals_from_the_shared_run(engine):
    poll = engine.command("poll:open", {"step": 1})["poll"]
    assert poll["choices"] == ["(784, 256)", "(256, 784)", "(256,)", "(784,)"] and poll["answers"] == 0
    engine.command("poll:answer", {"voter": "viewer-a", "poll": poll["id"], "choice": 1})
    engine.command("poll:answer", {"voter": "viewer-b", "poll": poll["id"], "choice": 0})
    # A second answer replaces the first (one per viewer), as does one sharing any key of it.
    assert engine.command("poll:answer", {"voter": "viewer-a", "poll": poll["id"], "choice": 0})["replaced"]
    assert engine.command("poll:answer", {"voters": ["viewer-a2", "viewer-a"], "poll": poll["id"], "choice": 1})["replaced"]
    current = engine.command("poll:get")["poll"]
    assert current["counts"] == [1, 1, 0, 0] and current["answers"] == 2
    assert "viewer-a" not in repr(poll_messages(engine))  # only counts leave the engine

    revealed = engine.command("poll:reveal")["poll"]
    assert revealed["status"] == "revealed" and revealed["reveal"]["correct"] == 1
    assert revealed["reveal"]["weights_step"] == engine.part().run.step_count
    with pytest.raises(UserError, match="revealed"):
        engine.command("poll:answer", {"voter": "viewer-c", "poll": poll["id"], "choice": 1})
    engine.command("poll:close")
    assert engine.command("poll:get")["poll"] is None and poll_messages(engine)[-1] is None
    with pytest.raises(UserError, match="no class poll"):
        engine.command("poll:answer", {"voter": "viewer-c", "poll": poll["id"], "choice": 1})


def test_a_poll_reveal_follows_the_shared_run_when_the_setup_changes(engine):
    engine.part().run.reset({"hidden_sizes": [32]})
    poll = engine.command("poll:open", {"step": 1})["poll"]
    assert "(32, 784)" in poll["choices"]
    reveal = engine.command("poll:reveal")["poll"]["reveal"]
    assert poll["choices"][reveal["correct"]] == "(32, 784)"


def test_number_steps_cannot_be_polled_and_unknown_steps_are_refused_in_words(engine):
    with pytest.raises(UserError, match="number"):
        engine.command("poll:open", {"step": 2})
    with pytest.raises(UserError, match="steps 1 to"):
        engine.command("poll:open", {"step": 99})
    assert engine.command("poll:get")["poll"] is None


# ---- the lesson's answers come from the network ---------------------------------------------------------

def test_every_lesson_step_asks_and_reveals_from_the_live_network(engine, tiny_dataset):
    steps = engine.command("lesson:steps")["steps"]
    assert len(steps) == len(STEPS) >= 8
    engine.part().run.step(TRAINED_STEPS + 10, wait_s=60)
    for number, step in enumerate(steps, start=1):
        reveal = engine.command("lesson:reveal", {"step": number, "pixels": pixels_of(tiny_dataset, 1)})["reveal"]
        assert reveal["said"] and reveal["details"]
        if step["choices"]:
            assert 0 <= reveal["correct"] < len(step["choices"]), step["key"]
        else:
            assert reveal["value"] is not None
    assert engine.command("lesson:reveal", {"step": 2})["reveal"]["value"] == 784 * 256 + 256


def number_of(key: str) -> int:
    return next(number for number, step in enumerate(STEPS, start=1) if step.key == key)


def test_the_row_step_on_an_untrained_run_says_so_instead_of_judging(engine, tiny_dataset):
    row = number_of("row-before-after")
    assert engine.command("lesson:steps")["steps"][row - 1]["needs_training"] == TRAINED_STEPS
    engine.part().run.step(3, wait_s=60)
    reveal = engine.command("lesson:reveal", {"step": row})["reveal"]
    assert reveal["judged"] is False and reveal["correct"] is None and reveal["trained_steps"] == 3
    assert "only 3 of the 50 steps" in reveal["said"] and "ask again" in reveal["details"][0]
    engine.part().run.step(TRAINED_STEPS, wait_s=60)
    again = engine.command("lesson:reveal", {"step": row})["reveal"]
    assert again["judged"] is True and again["correct"] in (0, 3)


def test_the_module_step_shows_the_live_model_called_and_handed_to_the_optimizer(engine, tiny_dataset):
    engine.part().run.step(5, wait_s=60)
    reveal = engine.command("lesson:reveal", {"step": number_of("module"), "pixels": pixels_of(tiny_dataset, 3)})["reveal"]
    code = reveal["code"]
    assert "Linear(in_features=784, out_features=256, bias=True)" in code
    assert ("[torch.Size([256, 784]), torch.Size([256]), torch.Size([10, 256]), torch.Size([10])]" in code)
    assert code[-1] == "True" and reveal["correct"] == 2
    # model.hidden(x) and x @ W.T + b print the same numbers, from the live weights
    weights = engine.part().replica.reader.latest()
    x = np.frombuffer(pixels_of(tiny_dataset, 3), "<f4")
    z = weights.layers[0][0] @ x + weights.layers[0][1]
    called = code[code.index(">>> model.hidden(x)") + 1]
    assert called.startswith(f"tensor([{z[0]:.4f}, {z[1]:.4f}")
    assert code[code.index(">>> x @ model.hidden.weight.T + model.hidden.bias") + 1] == called


def test_the_sigmoid_step_draws_the_curve_with_the_drawings_zs_on_it(engine, tiny_dataset):
    reveal = engine.command("lesson:reveal", {"step": number_of("sigmoid"), "pixels": pixels_of(tiny_dataset, 1)})["reveal"]
    curve = reveal["curve"]
    assert len(curve["points_z"]) == 256 and len(curve["z"]) == len(curve["a"])
    assert np.allclose(curve["points_a"], 1 / (1 + np.exp(-np.array(curve["points_z"]))), atol=1e-4)
    assert min(curve["z"]) <= min(curve["points_z"]) and max(curve["z"]) >= max(curve["points_z"])


@pytest.mark.parametrize("optimizer, words", [("adam", "Adam, which divides each gradient by its recent size"),
                                              ("sgd", "With SGD a step is the learning rate times the gradient")])
def test_the_trap_step_gives_the_fix_in_code_and_claims_true_for_the_optimizer(engine, optimizer, words):
    if optimizer != "adam":
        engine.part().run.reset({"optimizer": optimizer})
    trap = number_of("softmax-trap")
    question = engine.command("lesson:steps")["steps"][number_of("learning-rate") - 1]["question"]
    assert ("Adam moves each weight by about lr" in question) == (optimizer == "adam")
    reveal = engine.command("lesson:reveal", {"step": trap})["reveal"]
    assert any(words in line for line in reveal["details"])
    code = "\n".join(reveal["code"])
    assert "return self.output(x)" in code and "nn.NLLLoss()" in code
    losses = [line.rsplit("=", 1)[1].strip() for line in reveal["code"] if line.startswith("#   ")]
    assert len(losses) == 2 and losses[0] == losses[1]  # log_softmax + NLLLoss is CrossEntropyLoss on logits


def test_the_prediction_step_answers_what_the_replica_answers(engine, tiny_dataset):
    from server.link.replica import forward
    engine.part().run.step(30, wait_s=60)
    pixels = pixels_of(tiny_dataset, 2)
    reveal = engine.command("lesson:reveal", {"step": 6, "pixels": pixels})["reveal"]
    weights = engine.part().replica.reader.latest()
    expected = int(forward(weights, np.frombuffer(pixels, "<f4")).probabilities.argmax())
    assert reveal["prediction"] == expected == reveal["correct"]
    with pytest.raises(UserError, match="draw a digit"):
        engine.command("lesson:reveal", {"step": 6})
