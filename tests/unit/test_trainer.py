"""The trainer: plain synchronous PyTorch on real digits. It learns, replays exactly from a seed,
counts epochs, takes live changes, notices divergence and evaluates on the validation split."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from server.experiment import TrainConfig
from server.engine.trainer import BatchStats, Trainer, loss_function, resolve_device


def make_trainer(dataset, **config) -> Trainer:
    return Trainer(TrainConfig(**config), dataset.train.images, dataset.train.labels)


def loss_on(trainer: Trainer, x, y) -> float:
    with torch.no_grad():
        return loss_function(trainer.model, trainer.config, x, y)[0].item()


def test_training_lowers_the_loss_on_a_fixed_batch(small_dataset):
    trainer = make_trainer(small_dataset, seed=0)
    x, y = small_dataset.train.images[:256], small_dataset.train.labels[:256]
    before = loss_on(trainer, x, y)

    stats = trainer.train_batches(10)

    after = loss_on(trainer, x, y)
    assert stats.batches == 10 and stats.samples == 640
    assert after < before - 0.1, (before, after)


def test_two_trainers_with_the_same_seed_train_to_identical_weights(small_dataset):
    first = make_trainer(small_dataset, seed=3)
    second = make_trainer(small_dataset, seed=3)
    other_seed = make_trainer(small_dataset, seed=4)

    stats = [t.train_batches(20) for t in (first, second, other_seed)]

    for name, tensor in first.model.state_dict().items():
        assert torch.equal(tensor, second.model.state_dict()[name]), name
    assert stats[0].loss_sum == stats[1].loss_sum and stats[0].correct == stats[1].correct
    assert not torch.equal(first.model.hidden.weight, other_seed.model.hidden.weight)


def test_an_epoch_ends_after_every_training_digit_was_seen_once(small_dataset):
    # 1,000 digits in batches of 64: 15 full batches and a last one of 40.
    trainer = make_trainer(small_dataset, batch_size=64, epochs=3)

    first = trainer.train_batches(15)
    assert (first.epochs_completed, trainer.epoch, trainer.position) == (0, 0, 960)
    assert trainer.epoch_progress() == pytest.approx(0.96)

    boundary = trainer.train_batches(2)
    assert boundary.samples == 40 + 64  # the epoch's short last batch, then a new epoch
    assert (boundary.epochs_completed, trainer.epoch, trainer.position) == (1, 1, 64)
    assert trainer.global_step == 17
    assert trainer.progress() == pytest.approx((1 + 64 / 1000) / 3)


def test_training_stops_when_the_run_is_finished(small_dataset):
    trainer = make_trainer(small_dataset, batch_size=100, epochs=2)
    assert trainer.remaining_steps() == 20

    stats = trainer.train_batches(50)

    assert stats.batches == 20 and stats.epochs_completed == 2
    assert trainer.finished and trainer.progress() == 1.0 and trainer.remaining_steps() == 0
    assert trainer.train_batches(5).batches == 0


def test_the_step_count_of_a_run_counts_each_epochs_short_last_batch(small_dataset):
    """1,000 digits in batches of 64 are 16 steps an epoch (the last one of 40), so 3 epochs are
    48 steps; the total shown (done + remaining) stays 48 all along."""
    trainer = make_trainer(small_dataset, batch_size=64, epochs=3)
    totals = []
    while not trainer.finished:
        totals.append(trainer.global_step + trainer.remaining_steps())
        trainer.train_batches(1)
    assert trainer.global_step == 48
    assert set(totals) == {48}


def test_the_remaining_steps_follow_a_batch_size_change(small_dataset):
    trainer = make_trainer(small_dataset, batch_size=64, epochs=2)
    trainer.train_batches(5)  # 320 digits into the first epoch
    trainer.apply_live_config(trainer.config.updated({"batch_size": 300}))
    assert trainer.remaining_steps() == 3 + 4  # 680 digits left in this epoch (300, 300, 80), then 1,000
    trainer.train_batches(100)
    assert trainer.global_step == 5 + 7


def test_each_epoch_shows_every_digit_once_in_a_new_order(small_dataset):
    trainer = make_trainer(small_dataset, batch_size=100, epochs=2)
    first_order = trainer._order.clone()
    trainer.train_batches(10)
    second_order = trainer._order
    assert sorted(first_order.tolist()) == sorted(second_order.tolist()) == list(range(1000))
    assert not torch.equal(first_order, second_order)


def test_live_config_changes_the_learning_rate_in_the_optimizer(small_dataset):
    trainer = make_trainer(small_dataset, optimizer="sgd", lr=0.1, momentum=0.9)
    trainer.train_batches(3)
    weights_before = trainer.model.hidden.weight.clone()

    trainer.apply_live_config(trainer.config.updated({"lr": 0.01, "momentum": 0.5, "weight_decay": 0.001}))

    group = trainer.optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.01, 0.5, 0.001)
    assert torch.equal(trainer.model.hidden.weight, weights_before)  # same network goes on
    assert trainer.optimizer.state  # momentum buffers kept


def test_live_batch_size_takes_effect_on_the_next_batch(small_dataset):
    trainer = make_trainer(small_dataset, batch_size=64)
    assert trainer.train_batches(1).samples == 64

    trainer.apply_live_config(trainer.config.updated({"batch_size": 200}))

    assert trainer.train_batches(1).samples == 200
    assert trainer.position == 264


def test_a_diverging_run_is_flagged_and_stops_training(small_dataset):
    # Plain SGD at lr 10 through two leaky-ReLU layers blows the loss up to inf within a few steps.
    trainer = make_trainer(small_dataset, optimizer="sgd", lr=10.0, activation="leaky_relu",
                           hidden_sizes=[256, 256])

    stats = BatchStats()
    for _ in range(100):
        stats.add(trainer.train_batches(1))
        if stats.diverged:
            break

    assert stats.diverged
    assert trainer.global_step == stats.batches < 100  # the bad step was not applied or counted
    assert trainer.train_batches(1).diverged  # and it stays diverged


def test_the_default_learning_rate_does_not_diverge(small_dataset):
    stats = make_trainer(small_dataset).train_batches(30)
    assert not stats.diverged and stats.batches == 30


def test_softmax_output_learns_slower_than_logits_in_the_same_steps(small_dataset):
    """The question's forward() returns softmax; feeding that to CrossEntropyLoss applies softmax
    twice and flattens the gradients. Same seed, same batches, same steps: logits learn faster."""
    validation = small_dataset.validation
    accuracies = {}
    for output in ("logits", "softmax"):
        trainer = make_trainer(small_dataset, output=output, seed=0)
        trainer.train_batches(100)
        accuracies[output] = trainer.evaluate(validation.images, validation.labels)[1]

    assert accuracies["logits"] > 0.7
    assert accuracies["logits"] > accuracies["softmax"] + 0.1, accuracies


def test_evaluate_scores_the_validation_split_without_training(small_dataset):
    validation = small_dataset.validation
    trainer = make_trainer(small_dataset)
    untrained_loss, untrained_accuracy, _ = trainer.evaluate(validation.images, validation.labels)
    trainer.train_batches(50)
    weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    loss, accuracy, predictions = trainer.evaluate(validation.images, validation.labels, batch_size=64)

    with torch.no_grad():
        logits = trainer.model.logits(validation.images)
    assert predictions.shape == (200,)
    assert torch.equal(predictions, logits.argmax(1))
    assert accuracy == pytest.approx((predictions == validation.labels).float().mean().item())
    assert loss == pytest.approx(F.cross_entropy(logits, validation.labels).item(), rel=1e-5)
    assert loss < untrained_loss and accuracy > untrained_accuracy
    assert untrained_accuracy < 0.3  # about chance before training
    for name, tensor in trainer.model.state_dict().items():
        assert torch.equal(tensor, weights[name])


def test_batch_stats_average_per_sample():
    stats = BatchStats()
    stats.add(BatchStats(batches=1, samples=10, loss_sum=20.0, correct=5))
    stats.add(BatchStats(batches=1, samples=30, loss_sum=20.0, correct=25, epochs_completed=1))
    assert (stats.loss, stats.accuracy, stats.epochs_completed) == (1.0, 0.75, 1)


def test_device_choice():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_asking_for_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="PyTorch sees no CUDA GPU"):
        resolve_device("cuda")
