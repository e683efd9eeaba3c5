"""What the networks compute: covariate embeddings, MLP blocks, PMI and GAIN-GTEx networks, the Gaussian path.

No training code lives here (see :mod:`gtex_models.models.training`). Every network takes the sample
covariates as three tensors: ``tissue`` (int64 index), ``sex`` (int64 index into
:data:`gtex_models.data.covariates.SEXES`) and ``age`` (float32, standardised), as produced by
:meth:`gtex_models.data.covariates.CovariateEncoder.encode`.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from gtex_models.data.covariates import SEXES

EMBEDDING_INIT_STD = 0.01
GAUSSIAN_CHUNK = 64  # samples per batched k x k system (bounds the chunk x genes x rank temporary)


def embedding_size(vocabulary: int) -> int:
    """Width of a categorical embedding: ``int(sqrt(vocabulary)) + 1`` (as in Viñas et al.)."""
    return int(math.sqrt(vocabulary)) + 1


class CovariateEmbedding(nn.Module):
    """Tissue and sex embeddings concatenated with the numeric (standardised) age.

    The tables start near zero, ``N(0, EMBEDDING_INIT_STD²)``, not at PyTorch's ``N(0, 1)``: Adam moves
    each entry by about the learning rate per step, so from ``N(0, 1)`` the rows of an all-gene model
    stay dominated by their random start and the learnt tissue layout is noise.

    Parameters
    ----------
    n_tissues : size of the tissue vocabulary.
    n_sexes : size of the sex vocabulary (female, male, unknown).
    """

    def __init__(self, n_tissues: int, n_sexes: int = len(SEXES)) -> None:
        super().__init__()
        self.tissue = nn.Embedding(n_tissues, embedding_size(n_tissues))
        self.sex = nn.Embedding(n_sexes, embedding_size(n_sexes))
        for table in (self.tissue, self.sex):
            nn.init.normal_(table.weight, 0.0, EMBEDDING_INIT_STD)
        self.out_features = self.tissue.embedding_dim + self.sex.embedding_dim + 1

    def forward(self, tissue: torch.Tensor, sex: torch.Tensor, age: torch.Tensor) -> torch.Tensor:
        """``(batch, out_features)`` covariate features."""
        return torch.cat([self.tissue(tissue), self.sex(sex), age.unsqueeze(1).to(self.tissue.weight.dtype)], 1)


def mlp_block(in_features: int, out_features: int, dropout: float) -> nn.Sequential:
    """Linear -> BatchNorm1d -> ReLU -> Dropout."""
    return nn.Sequential(
        nn.Linear(in_features, out_features),
        nn.BatchNorm1d(out_features),
        nn.ReLU(),
        nn.Dropout(dropout),
    )


class _ConditionalMLP(nn.Module):
    """``[first, second, covariate embedding]`` -> hidden MLP blocks -> one output per gene."""

    def __init__(self, n_genes: int, n_tissues: int, hidden_sizes: Sequence[int], dropout: float) -> None:
        super().__init__()
        self.covariates = CovariateEmbedding(n_tissues)
        sizes = [2 * n_genes + self.covariates.out_features, *hidden_sizes]
        self.hidden = nn.Sequential(*(mlp_block(a, b, dropout) for a, b in zip(sizes[:-1], sizes[1:])))
        self.output = nn.Linear(sizes[-1], n_genes)

    def _forward(
        self, first: torch.Tensor, second: torch.Tensor, tissue: torch.Tensor, sex: torch.Tensor,
        age: torch.Tensor,
    ) -> torch.Tensor:
        features = torch.cat([first, second, self.covariates(tissue, sex, age)], 1)
        return self.output(self.hidden(features))


class PMINetwork(_ConditionalMLP):
    """Pseudo-mask imputer network: ``(x * mask, mask, covariates)`` -> expression of every gene.

    Parameters
    ----------
    n_genes, n_tissues : data dimensions.
    hidden_sizes : widths of the hidden layers (paper: one layer of 3072).
    dropout : dropout rate after each hidden layer.
    """

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, tissue: torch.Tensor, sex: torch.Tensor, age: torch.Tensor
    ) -> torch.Tensor:
        """Predicted expression (batch x genes); ``mask`` is 1 where ``x`` is observed."""
        return self._forward(x * mask, mask, tissue, sex, age)


class GAINGenerator(_ConditionalMLP):
    """GAIN-GTEx generator: ``(x * m + z * (1 - m), m, covariates)`` -> expression of every gene."""

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor, tissue: torch.Tensor,
        sex: torch.Tensor, age: torch.Tensor,
    ) -> torch.Tensor:
        """Predicted expression (batch x genes); ``noise`` fills the entries where ``mask`` is 0."""
        return self._forward(x * mask + noise * (1.0 - mask), mask, tissue, sex, age)


class GAINDiscriminator(_ConditionalMLP):
    """GAIN-GTEx discriminator: ``(imputed x, hint, covariates)`` -> logit that each entry was observed."""

    def forward(
        self, x: torch.Tensor, hint: torch.Tensor, tissue: torch.Tensor, sex: torch.Tensor, age: torch.Tensor
    ) -> torch.Tensor:
        """Per-entry logits (batch x genes); ``sigmoid`` gives the probability of "observed"."""
        return self._forward(x, hint, tissue, sex, age)


class GaussianPath(nn.Module):
    """The Gaussian conditional mean as a fixed layer: ``m + L M⁻¹ L_oᵀ D_o⁻¹ (x_o - m_o)``, ``M = I + L_oᵀ D_o⁻¹ L_o``.

    ``m`` is the sample's expectation (its group's mean plus sex and age effects), ``L`` (genes x rank)
    and ``D`` (genes) the covariance ``L Lᵀ + D``; all are buffers filled from a fitted ``gauss`` imputer
    (:func:`gtex_models.models.hybrid.gaussian_path`), never trained. Computed in float32 whatever the
    autocast or the module's dtype (the k x k solves need it).
    """

    def __init__(self, n_genes: int, n_tissues: int, rank: int) -> None:
        super().__init__()
        self.register_buffer("tissue_means", torch.zeros(n_tissues, n_genes))
        self.register_buffer("sex_effects", torch.zeros(len(SEXES), n_genes))
        self.register_buffer("age_effects", torch.zeros(n_genes))
        self.register_buffer("age_affine", torch.tensor([1.0, 0.0]))  # encoder's age -> the centring's age
        self.register_buffer("loadings", torch.zeros(n_genes, rank))
        self.register_buffer("noise", torch.ones(n_genes))

    def expected(self, tissue: torch.Tensor, sex: torch.Tensor, age: torch.Tensor) -> torch.Tensor:
        """Each sample's expectation (batch x genes), float32."""
        scale, shift = self.age_affine.float()
        age = (age.float() * scale + shift).unsqueeze(1)
        return self.tissue_means.float()[tissue] + self.sex_effects.float()[sex] + age * self.age_effects.float()

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, tissue: torch.Tensor, sex: torch.Tensor, age: torch.Tensor
    ) -> torch.Tensor:
        """The conditional mean of every gene given the entries where ``mask`` is 1 (batch x genes, float32)."""
        with torch.autocast(x.device.type, enabled=False):
            loadings, noise, mask = self.loadings.float(), self.noise.float(), mask.float()
            expected = self.expected(tissue, sex, age)
            weight = mask / noise
            scores = ((x.float() - expected) * weight) @ loadings
            eye = torch.eye(loadings.shape[1], device=x.device)
            factors = torch.cat([
                torch.linalg.solve(eye + torch.einsum("bg,gk,gl->bkl", w, loadings, loadings), s.unsqueeze(-1))
                for w, s in zip(weight.split(GAUSSIAN_CHUNK), scores.split(GAUSSIAN_CHUNK))
            ]).squeeze(-1)
            return expected + factors @ loadings.T


class HybridNetwork(nn.Module):
    """A Gaussian path plus a network that learns what it misses: ``x̂ = linear + net(completed, mask, covariates)``.

    ``completed`` is the input with its unknown entries filled by the Gaussian path; the network's output
    layer starts at zero, so an untrained hybrid is exactly the Gaussian conditional mean and training
    only adds the non-linear part the data support. After training, ``residual_weight`` (a buffer, 1 while
    training) scales what the network adds, chosen on the validation donors
    (:func:`gtex_models.models.hybrid.choose_residual_weight`): 0 when the network does not help there.
    """

    def __init__(self, network: _ConditionalMLP, path: GaussianPath) -> None:
        super().__init__()
        self.network = network
        self.path = path
        self.register_buffer("residual_weight", torch.ones(()))
        nn.init.zeros_(network.output.weight)
        nn.init.zeros_(network.output.bias)

    @property
    def covariates(self) -> CovariateEmbedding:
        """The wrapped network's covariate embedding (the tissue embeddings of the Embeddings page)."""
        return self.network.covariates

    def forward(self, x: torch.Tensor, mask: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        """``rest``: the wrapped network's remaining inputs: GAIN's noise (added to the filled entries), then
        the covariates ``tissue, sex, age``."""
        covariates = rest[-3:]
        linear = self.path(x, mask, *covariates).to(x.dtype)
        filled = linear + rest[0] if len(rest) == 4 else linear
        completed = x * mask + filled * (1.0 - mask)
        return linear + self.residual_weight.to(x.dtype) * self.network._forward(completed, mask, *covariates)
