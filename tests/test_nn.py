"""The networks: shapes, the shared covariate embedding, and what each input can influence."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gtex_models.models.networks import (
    EMBEDDING_INIT_STD,
    CovariateEmbedding,
    GAINDiscriminator,
    GAINGenerator,
    PMINetwork,
    embedding_size,
    mlp_block,
)

N, GENES, TISSUES = 8, 30, 49


@pytest.fixture
def inputs() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "x": torch.randn(N, GENES, generator=generator),
        "mask": (torch.rand(N, GENES, generator=generator) < 0.5).float(),
        "tissue": torch.randint(0, TISSUES, (N,), generator=generator),
        "sex": torch.randint(0, 3, (N,), generator=generator),
        "age": torch.randn(N, generator=generator),
    }


def test_embedding_size_rule() -> None:
    assert [embedding_size(v) for v in (3, 49, 54)] == [2, 8, 8]


def test_covariate_embedding_concatenates_tissue_sex_and_age(inputs: dict[str, torch.Tensor]) -> None:
    embedding = CovariateEmbedding(TISSUES)
    out = embedding(inputs["tissue"], inputs["sex"], inputs["age"])
    assert embedding.out_features == 8 + 2 + 1
    assert out.shape == (N, embedding.out_features)
    assert torch.equal(out[:, -1], inputs["age"])


def test_covariate_embeddings_start_near_zero() -> None:
    torch.manual_seed(0)
    embedding = CovariateEmbedding(TISSUES)
    for table in (embedding.tissue.weight.detach(), embedding.sex.weight.detach()):  # N(0, 0.01²), not N(0, 1)
        assert float(table.abs().max()) < 0.05 and float(table.std()) == pytest.approx(EMBEDDING_INIT_STD, rel=0.3)


def test_mlp_block_layer_order() -> None:
    block = mlp_block(5, 7, 0.3)
    assert [type(layer) for layer in block] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout]
    assert block[3].p == 0.3


@pytest.mark.parametrize("cls", [PMINetwork, GAINGenerator, GAINDiscriminator])
def test_every_network_uses_the_one_embedding_module(cls: type[nn.Module]) -> None:
    network = cls(GENES, TISSUES, [16, 16], 0.1)
    assert isinstance(network.covariates, CovariateEmbedding)
    assert len(network.hidden) == 2
    assert network.hidden[0][0].in_features == 2 * GENES + network.covariates.out_features


def test_pmi_network_ignores_values_under_the_mask(inputs: dict[str, torch.Tensor]) -> None:
    network = PMINetwork(GENES, TISSUES, [16], 0.2).eval()
    out = network(**inputs)
    changed = inputs["x"] + 100.0 * (1.0 - inputs["mask"])
    assert out.shape == (N, GENES)
    assert torch.allclose(network(**{**inputs, "x": changed}), out)


def test_gain_generator_uses_noise_only_where_missing(inputs: dict[str, torch.Tensor]) -> None:
    generator = GAINGenerator(GENES, TISSUES, [16], 0.0).eval()
    noise = torch.rand(N, GENES) * 0.01
    out = generator(inputs["x"], inputs["mask"], noise, inputs["tissue"], inputs["sex"], inputs["age"])
    hidden_changed = inputs["x"] + 100.0 * (1.0 - inputs["mask"])
    same = generator(hidden_changed, inputs["mask"], noise, inputs["tissue"], inputs["sex"], inputs["age"])
    assert torch.allclose(out, same)
    other_noise = generator(inputs["x"], inputs["mask"], noise + 1.0, inputs["tissue"], inputs["sex"], inputs["age"])
    assert not torch.allclose(out, other_noise)


def test_gain_discriminator_gives_one_logit_per_entry(inputs: dict[str, torch.Tensor]) -> None:
    discriminator = GAINDiscriminator(GENES, TISSUES, [16, 16], 0.0)
    hint = 0.5 * torch.ones(N, GENES)
    logits = discriminator(inputs["x"], hint, inputs["tissue"], inputs["sex"], inputs["age"])
    assert logits.shape == (N, GENES)
    assert torch.isfinite(logits).all()
