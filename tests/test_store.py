"""The on-disk cohort store: streaming statistics, lazy views, block batches, training and streaming imputation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from gtex_models.data.cohort import Cohort
from gtex_models.data.batches import BlockBatches
from gtex_models.data.store import RunningMoments, StoreWriter, save_store
from gtex_models.data.transform import Transform
from gtex_models.interfaces.streaming import impute_store
from gtex_models.models.model_space import ModelSpace
from gtex_models.models.registry import make_imputer


def _with_missing(cohort: Cohort, rate: float = 0.2, seed: int = 0) -> Cohort:
    x = cohort.x.copy()
    x[np.random.default_rng(seed).random(x.shape) < rate] = np.nan
    return Cohort(x, cohort.genes, cohort.samples, cohort.transform, cohort.meta)


def _aligned(stored: Cohort, memory: Cohort) -> np.ndarray:
    """Rows of ``memory`` in the store's row order."""
    return pd.Index(memory.samples["sample_id"]).get_indexer(stored.samples["sample_id"].astype(str))


@pytest.fixture(scope="module")
def stored(small_cohort, tmp_path_factory) -> tuple[Cohort, Cohort]:
    memory = _with_missing(small_cohort)
    raw = memory.transform.inverse(memory.x)
    memory = Cohort.from_raw(raw, memory.genes, memory.samples, scale="tpm")  # NaN stay missing
    path = tmp_path_factory.mktemp("store") / "cohort"
    save_store(memory, path, block_rows=37)
    return Cohort.load(path), memory


def test_running_moments_match_nanmean_and_nanstd() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(3, 2, size=(500, 7))
    values[rng.random(values.shape) < 0.3] = np.nan
    values[:, 6] = np.nan  # an all-missing gene
    moments = RunningMoments(7)
    for block in np.array_split(values, [3, 4, 100, 101, 370]):
        moments.update(block)
    transform = moments.transform("log", 1.0)
    reference = Transform.fit(values, scale="log")
    np.testing.assert_allclose(transform.mean, reference.mean, rtol=1e-6)
    np.testing.assert_allclose(transform.std, reference.std, rtol=1e-6)


def test_store_round_trip_with_train_statistics_and_split_runs(stored) -> None:
    store, memory = stored
    assert store.stored and not memory.stored and store.x.shape == memory.x.shape
    np.testing.assert_allclose(store.transform.mean, memory.transform.mean, atol=1e-5)
    np.testing.assert_allclose(store.transform.std, memory.transform.std, atol=1e-5)
    np.testing.assert_allclose(np.asarray(store.x), memory.x[_aligned(store, memory)], atol=1e-5)
    splits = store.samples["split"].astype(str)
    assert (splits != splits.shift()).sum() == 3  # train, valid, test: one run each


def test_views_read_only_their_rows_and_genes(stored) -> None:
    store, memory = stored
    test = store.split("test").subset_genes(np.arange(5, 50, 3))
    assert test.stored
    expected = memory.split("test")
    rows = pd.Index(expected.samples["sample_id"]).get_indexer(test.samples["sample_id"].astype(str))
    np.testing.assert_allclose(np.asarray(test.x), expected.x[rows][:, 5:50:3], atol=1e-5)
    assert sum(len(block) for block in test.x.blocks()) == test.n_samples


def test_reading_more_than_half_the_memory_is_refused(stored, monkeypatch) -> None:
    store, _ = stored
    monkeypatch.setattr("os.sysconf", lambda name: 1 if name == "SC_PAGE_SIZE" else 2 * 1024)
    with pytest.raises(MemoryError, match="subset_samples"):
        np.asarray(store.x)


def test_a_failed_write_leaves_nothing(small_cohort, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Only 10 of"):
        with StoreWriter(tmp_path / "s", small_cohort.genes, small_cohort.samples) as writer:
            writer.append(np.ones((10, small_cohort.n_genes)))
    with pytest.raises(ValueError, match="non-negative"):
        with StoreWriter(tmp_path / "s", small_cohort.genes, small_cohort.samples.iloc[:2]) as writer:
            writer.append(-np.ones((2, small_cohort.n_genes)))
    assert not (tmp_path / "s").exists()


def test_a_store_replaces_only_a_cohort_of_ours_and_only_with_overwrite(small_cohort, tmp_path: Path) -> None:
    from gtex_models.common.atomic import OutputPathError

    cohort = small_cohort.subset_samples(np.arange(30))
    save_store(cohort, tmp_path / "s")
    written = (tmp_path / "s" / "expression.h5").read_bytes()
    with pytest.raises(OutputPathError, match="already holds a cohort. Replace it with --overwrite"):
        save_store(cohort.subset_samples(np.arange(10)), tmp_path / "s")
    assert (tmp_path / "s" / "expression.h5").read_bytes() == written
    save_store(cohort.subset_samples(np.arange(10)), tmp_path / "s", overwrite=True)
    assert Cohort.load(tmp_path / "s").n_samples == 10
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(OutputPathError, match="files this project did not write"):
        save_store(cohort, tmp_path / "mine", overwrite=True)
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_block_batches_shard_the_blocks_between_ranks(stored) -> None:
    store, _ = stored
    train = store.split("train")
    covariates = {"tissue": np.arange(train.n_samples), "sex": np.zeros(train.n_samples, dtype=np.int64),
                  "age": np.zeros(train.n_samples, dtype=np.float32)}
    seen = []
    for rank in range(2):
        source = BlockBatches(train.x, covariates, rank=rank, world_size=2, seed=3)
        batches = list(source.shuffled(16, torch.Generator().manual_seed(rank)))
        seen.append(torch.cat([b["tissue"] for b in batches]).numpy())  # "tissue" carries the row number
        assert all(len(b["x"]) == 16 for b in batches)
    assert len(seen[0]) == len(seen[1]) > 0  # lockstep: the same number of batches on both ranks
    assert not set(seen[0]) & set(seen[1])  # each row on one rank only
    assert len(seen[0]) + len(seen[1]) > train.n_samples - 2 * 16 - 2 * train.x.block_rows
    # three blocks: two for one rank, one for the other; both still take the same number of steps
    uneven = train.subset_samples(np.arange(3 * train.x.block_rows))
    few = {key: value[:uneven.n_samples] for key, value in covariates.items()}
    counts = [len(list(BlockBatches(uneven.x, few, rank=rank, world_size=2, seed=3).shuffled(
        16, torch.Generator().manual_seed(rank)))) for rank in range(2)]
    assert counts == [train.x.block_rows // 16] * 2
    one = BlockBatches(train.x, covariates, seed=3)
    rows = torch.cat([b["tissue"] for b in one.shuffled(16, torch.Generator().manual_seed(0))]).numpy()
    assert sorted(rows) == list(range(train.n_samples))  # one process: every row once
    batch = next(one.ordered(1000))
    np.testing.assert_allclose(batch["x"].numpy(), np.nan_to_num(np.asarray(train.x)[:len(batch["x"])]), atol=1e-6)
    assert torch.equal(batch["known"], (~torch.isnan(torch.from_numpy(np.asarray(train.x)[:len(batch["x"])]))).float())


def test_pmi_trains_on_a_store_and_streams_its_imputation(stored, tmp_path: Path) -> None:
    store, memory = stored
    known = store.samples["tissue"].astype(str).isin(store.split("train").tissues).to_numpy()
    imputer = make_imputer("pmi", hidden_sizes=[64], dropout=0.0, batch_size=32, lr=0.005, max_epochs=4,
                           device="cpu").fit(store.split("train"), store.split("valid"))
    history = imputer.history["valid_loss"]
    assert len(history) == 4 and min(history) < history[0]
    # a model space of its own (another mean and SD): the store's log values are standardised with it
    model_transform = Transform(memory.transform.mean + 0.3, memory.transform.std * 1.2, "tpm")
    space = ModelSpace(memory.genes, imputer.tissues, model_transform)
    part = store.subset_samples(known)
    summary = impute_store(imputer, space, part, tmp_path / "out.csv")
    frame = pd.read_csv(tmp_path / "out.csv", index_col="sample_id")
    rows = _aligned(part, memory)
    assert summary.n_imputed == int(np.isnan(memory.x[rows]).sum()) > 0
    # block by block, the same values as imputing the whole cohort at once, on the TPM scale
    x = model_transform.forward(memory.raw()[rows])
    whole = imputer.impute(Cohort(x, memory.genes, memory.samples.iloc[rows], model_transform))
    np.testing.assert_allclose(frame.to_numpy(), model_transform.inverse(whole), rtol=1e-4, atol=1e-3)
    assert frame.index.tolist() == part.samples["sample_id"].astype(str).tolist()
    impute_store(imputer, space, part, tmp_path / "imputed")
    out = Cohort.load(tmp_path / "imputed")
    assert not np.isnan(np.asarray(out.x)).any() and out.n_samples == part.n_samples


def test_cli_trains_on_a_store_and_streams_imputation(stored, tmp_path: Path, capsys) -> None:
    from gtex_models.interfaces.cli.main import main

    store, _ = stored
    path = Path(store.x._file.path).parent
    config = tmp_path / "pmi.yaml"
    config.write_text("method: pmi\nmodel: {hidden_sizes: [32]}\n"
                      "training: {batch_size: 32, lr: 0.005, max_epochs: 2, device: cpu}\n")
    checkpoint = tmp_path / "pmi.safetensors"
    assert main(["train", "--cohort", str(path), "--config", str(config), "--out", str(checkpoint), "--resume"]) == 2
    assert "no training state" in capsys.readouterr().err and not checkpoint.exists()
    assert main(["train", "--cohort", str(path), "--config", str(config), "--scenario", "inplace",
                 "--out", str(checkpoint)]) == 2
    assert "--scenario inductive" in capsys.readouterr().err
    assert main(["train", "--cohort", str(path), "--config", str(config), "--out", str(checkpoint)]) == 0
    assert "Trained pmi with 1 process(es): not scored (the test samples have missing values" in capsys.readouterr().out
    assert checkpoint.exists() and not Path(f"{checkpoint}.resume").exists()
    assert main(["impute", "--checkpoint", str(checkpoint), "--input", str(path), "--out", str(tmp_path / "o.csv"),
                 "--draws", "5"]) == 2
    assert "drop --interval, --draws" in capsys.readouterr().err
