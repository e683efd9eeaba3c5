"""`precision: auto` chooses by a measured micro-benchmark on the machine, not by CPU flags (issue #27, point 9)."""

from __future__ import annotations

import time

import pytest

from gtex_models.models import training_settings as training


@pytest.fixture
def fresh_benchmark():
    training.precision_benchmark.cache_clear()
    yield
    training.precision_benchmark.cache_clear()


def _fake_steps(monkeypatch, seconds: dict[str, float], calls: list[str]):
    def timed_step(precision):
        def step():
            calls.append(precision)
            return seconds[precision]
        return step
    monkeypatch.setattr(training, "_timed_step", timed_step)


def test_auto_takes_bf16_only_when_it_measured_clearly_faster(monkeypatch, fresh_benchmark):
    calls: list[str] = []
    _fake_steps(monkeypatch, {"fp32": 0.010, "bf16": 0.060}, calls)  # bf16 6x slower (AVX512-BF16 without AMX)
    assert training.preferred_precision("cpu") == "fp32"
    assert training.TrainingConfig(precision="auto", device="cpu").precision == "fp32"
    assert calls.count("bf16") == calls.count("fp32") == 6  # a warm-up and five timed steps each, measured once
    training.precision_benchmark.cache_clear()
    _fake_steps(monkeypatch, {"fp32": 0.010, "bf16": 0.004}, calls)
    assert training.preferred_precision("cpu") == "bf16"
    training.precision_benchmark.cache_clear()
    _fake_steps(monkeypatch, {"fp32": 0.010, "bf16": 0.009}, calls)  # within the noise: the safe fp32
    assert training.preferred_precision("cpu") == "fp32"


def test_the_real_micro_benchmark_is_quick_and_cached(fresh_benchmark):
    start = time.perf_counter()
    result = training.precision_benchmark()
    first = time.perf_counter() - start
    assert result["choice"] in ("fp32", "bf16") and result["fp32_ms"] > 0 and result["bf16_ms"] > 0
    assert result["choice"] == ("bf16" if result["bf16_ms"] <= training.BF16_MARGIN * result["fp32_ms"] else "fp32")
    start = time.perf_counter()
    assert training.precision_benchmark() is result  # once per process
    assert time.perf_counter() - start < 0.01 and first < 30  # (tens of ms on an idle machine)
