"""The generic training loop on toy tasks: early stopping, budgets, progress, seeding, precision."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from gtex_models.models.training import Objective, Task, evaluate, frozen, seeded, train
from gtex_models.models.training_settings import TrainingConfig


def _toy_task() -> Task:
    """One weight, trained towards 2 while validation prefers 1: validation loss turns up midway."""
    module = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(module.weight)

    def prepare(batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {**batch, "noise": torch.rand(batch["x"].shape, generator=generator)}

    def train_loss(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return ((module(batch["x"]) - 2.0) ** 2).mean()

    def valid_loss(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return ((module(batch["x"]) - 1.0) ** 2).mean()

    return Task(module, [Objective("fit", train_loss, module.parameters())], prepare, valid_loss)


DATA = {"x": torch.ones(64, 1)}
CONFIG = TrainingConfig(batch_size=16, lr=0.02, max_epochs=60, patience=3, device="cpu")


def test_early_stopping_restores_the_best_weights() -> None:
    task = _toy_task()
    history = train(task, DATA, DATA, CONFIG)
    best = min(history.valid_loss)
    assert history.stop_reason.startswith("early stopping")
    assert history.epochs == history.best_epoch + CONFIG.patience
    assert history.valid_loss[history.best_epoch - 1] == best
    assert history.valid_loss[-1] > best
    assert evaluate(task, DATA, CONFIG) == pytest.approx(best)
    assert task.module.weight.item() == pytest.approx(1.0, abs=0.1)


def test_without_validation_data_it_runs_max_epochs() -> None:
    history = train(_toy_task(), DATA, None, TrainingConfig(batch_size=16, lr=0.02, max_epochs=4, device="cpu"))
    assert history.epochs == 4 and history.valid_loss == [] and history.best_epoch is None
    assert history.stop_reason == "max_epochs (4)"
    assert len(history.train_loss["fit"]) == 4
    assert history.train_loss["fit"][-1] < history.train_loss["fit"][0]


def test_time_budget_stops_after_one_batch() -> None:
    config = TrainingConfig(batch_size=16, lr=0.02, max_epochs=50, max_seconds=0.0, device="cpu")
    history = train(_toy_task(), DATA, DATA, config)
    assert history.epochs == 1
    assert history.stop_reason.startswith("time budget")


def test_progress_reports_fractions_and_finishes_at_one() -> None:
    calls: list[tuple[float, str]] = []
    train(_toy_task(), DATA, DATA, CONFIG, progress=lambda fraction, message: calls.append((fraction, message)))
    fractions = [fraction for fraction, _ in calls]
    assert all(0.0 <= f <= 1.0 for f in fractions) and fractions == sorted(fractions)
    assert calls[0][1].startswith("epoch 1/60: train fit")
    assert calls[-1][0] == 1.0 and calls[-1][1].startswith("done:")


def test_training_is_deterministic_and_leaves_the_global_rng_alone() -> None:
    task = _toy_task()
    state = torch.random.get_rng_state()
    first = train(task, DATA, DATA, CONFIG)
    assert torch.equal(torch.random.get_rng_state(), state)
    second = train(_toy_task(), DATA, DATA, CONFIG)
    assert first.valid_loss == second.valid_loss and first.train_loss == second.train_loss


def test_seeded_block_is_reproducible() -> None:
    with seeded(5, torch.device("cpu")):
        a = torch.rand(3)
    with seeded(5, torch.device("cpu")):
        b = torch.rand(3)
    assert torch.equal(a, b)


def test_bf16_precision_trains() -> None:
    history = train(_toy_task(), DATA, DATA, TrainingConfig(batch_size=16, lr=0.02, max_epochs=5,
                                                            precision="bf16", device="cpu"))
    assert history.precision == "bf16"
    assert all(torch.isfinite(torch.tensor(history.valid_loss)))


def test_history_is_json_serialisable() -> None:
    history = train(_toy_task(), DATA, DATA, TrainingConfig(batch_size=16, max_epochs=2, device="cpu"))
    assert json.loads(json.dumps(history.to_dict()))["epochs"] == 2


def test_config_coerces_yaml_strings_and_rejects_bad_values() -> None:
    config = TrainingConfig(lr="1e-3", batch_size="64")  # type: ignore[arg-type]
    assert config.lr == 1e-3 and config.batch_size == 64
    with pytest.raises(ValueError, match="precision"):
        TrainingConfig(precision="fp8")
    with pytest.raises(ValueError, match="batch_size"):
        TrainingConfig(batch_size=1)


def test_frozen_module_takes_no_gradient_and_is_restored() -> None:
    layer = nn.Linear(3, 1)
    x = torch.ones(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match="boom"), frozen(layer):
        assert not any(p.requires_grad for p in layer.parameters())
        layer(x).sum().backward()
        raise RuntimeError("boom")
    assert layer.weight.grad is None and x.grad is not None  # gradient reached the input only
    assert all(p.requires_grad for p in layer.parameters())


def test_precision_auto_is_resolved_when_the_config_is_made():
    """``precision: auto`` becomes what this machine computes natively, so a saved config names what was used."""
    from gtex_models.models.training_settings import preferred_precision

    config = TrainingConfig(precision="auto", device="cpu")
    assert config.precision == preferred_precision("cpu") and config.precision in ("fp32", "bf16")
    assert TrainingConfig(precision="bf16").precision == "bf16"
