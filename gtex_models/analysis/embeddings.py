"""Tissue embeddings learnt by PMI and GAIN-GTEx: the matrix, PCA and UMAP views, nearest tissues.

Each deep imputer conditions on the tissue through an ``nn.Embedding`` inside its covariate module
(:class:`~gtex_models.models.networks.CovariateEmbedding`); its rows place tissues with similar expression
programs close together (Viñas et al. 2021, Fig. 3). UMAP is imported inside
:func:`umap_coordinates` only: its first call compiles with numba (~10 s), so the demo precomputes it.

Example
-------
>>> matrix = tissue_embeddings(imputer)                          # doctest: +SKIP
>>> pca, explained = pca_coordinates(matrix)                     # doctest: +SKIP
>>> nearest_tissues(matrix, "Brain - Cortex", k=3)               # doctest: +SKIP
>>> brain_neighbours(matrix)                                     # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gtex_models.models.base import Imputer


def tissue_embeddings(imputer: Imputer) -> pd.DataFrame:
    """The tissue embedding matrix of a fitted PMI or GAIN-GTEx imputer (tissues x dimensions).

    For GAIN-GTEx the generator's embedding is used (the first covariate module of the networks).
    """
    from gtex_models.models.networks import CovariateEmbedding  # torch: only where a network is read

    networks = getattr(imputer, "networks", None)
    if networks is None:
        raise ValueError(f"The {imputer.method} imputer has no networks, hence no tissue embeddings.")
    ordered = sorted(networks.items(), key=lambda item: item[0] == "discriminator")
    for _, network in ordered:
        for module in network.modules():
            if isinstance(module, CovariateEmbedding):
                weight = module.tissue.weight.detach().float().cpu().numpy()
                columns = [f"dim_{i + 1}" for i in range(weight.shape[1])]
                return pd.DataFrame(weight, index=pd.Index(imputer.tissues, name="tissue"), columns=columns)
    raise ValueError(f"The {imputer.method} imputer has no tissue embedding module.")


def pca_coordinates(embeddings: pd.DataFrame, n_components: int = 2) -> tuple[pd.DataFrame, np.ndarray]:
    """Principal components of the centred embeddings (numpy SVD).

    Returns
    -------
    coordinates : ``tissue``, ``pc_1`` ... ``pc_n``.
    explained : share of the variance explained by each returned component.
    """
    matrix = embeddings.to_numpy(dtype=np.float64)
    centred = matrix - matrix.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    n = min(n_components, len(s))
    coordinates = pd.DataFrame(u[:, :n] * s[:n], columns=[f"pc_{i + 1}" for i in range(n)])
    coordinates.insert(0, "tissue", embeddings.index.to_list())
    total = float(np.sum(s**2))
    explained = (s[:n] ** 2) / total if total > 0 else np.zeros(n)
    return coordinates, explained


def umap_coordinates(embeddings: pd.DataFrame, n_neighbors: int = 10, min_dist: float = 0.3,
                     seed: int = 0) -> pd.DataFrame:
    """2-D UMAP of the embeddings (cosine metric): ``tissue``, ``umap_1``, ``umap_2``."""
    import umap  # heavy (numba): imported only here

    n_neighbors = max(2, min(n_neighbors, len(embeddings) - 1))
    reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, metric="cosine", random_state=seed,
                        n_jobs=1, init="random")
    coords = reducer.fit_transform(embeddings.to_numpy(dtype=np.float32))
    return pd.DataFrame({"tissue": embeddings.index.to_list(), "umap_1": coords[:, 0], "umap_2": coords[:, 1]})


UMAP_MIN_GROUPS = 4
"""Below this many tissues (groups) no UMAP is computed: two or three points need no projection."""


def embedding_coordinates(imputer: Imputer) -> pd.DataFrame | None:
    """UMAP coordinates of a fitted imputer's tissue embeddings, or None when it has none (baselines)
    or fewer than :data:`UMAP_MIN_GROUPS` tissues (plot :func:`pca_coordinates` of the embeddings then)."""
    if getattr(imputer, "networks", None) is None or len(getattr(imputer, "tissues", ())) < UMAP_MIN_GROUPS:
        return None
    return umap_coordinates(tissue_embeddings(imputer))


def cosine_similarity(embeddings: pd.DataFrame) -> pd.DataFrame:
    """Tissue x tissue cosine similarity of the embedding rows."""
    matrix = embeddings.to_numpy(dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit = matrix / np.where(norms > 0, norms, 1.0)
    return pd.DataFrame(unit @ unit.T, index=embeddings.index, columns=embeddings.index)


def nearest_tissues(embeddings: pd.DataFrame, tissue: str | None = None, k: int = 5) -> pd.DataFrame:
    """The ``k`` most similar tissues (cosine similarity) of ``tissue``, or of every tissue.

    Returns ``tissue``, ``rank``, ``neighbour``, ``cosine_similarity``.
    """
    similarity = cosine_similarity(embeddings)
    queries = similarity.index.to_list() if tissue is None else [tissue]
    if tissue is not None and tissue not in similarity.index:
        raise ValueError(f"Unknown tissue {tissue!r}: the model has no embedding for it.")
    records = []
    for query in queries:
        row = similarity.loc[query].drop(query).sort_values(ascending=False).head(k)
        for rank, (neighbour, value) in enumerate(row.items(), start=1):
            records.append({"tissue": query, "rank": rank, "neighbour": neighbour, "cosine_similarity": value})
    return pd.DataFrame.from_records(records, columns=["tissue", "rank", "neighbour", "cosine_similarity"])


def brain_neighbours(embeddings: pd.DataFrame, k: int = 5) -> pd.DataFrame:
    """For each brain region (a tissue named ``"Brain - ..."``): how many of its ``k`` nearest tissues
    (cosine similarity) are brain regions too — the hierarchy check of the demo (Viñas et al. 2021, Fig. 3).

    Returns ``tissue``, ``brain_in_top`` (count) and ``neighbours`` (the ``k`` nearest, ``"; "``-joined);
    no rows when the embeddings have no brain region.
    """
    brain = [tissue for tissue in embeddings.index if str(tissue).startswith("Brain - ")]
    near = nearest_tissues(embeddings, k=k)
    near = near[near["tissue"].isin(brain)]
    return (near.assign(is_brain=near["neighbour"].isin(brain))
            .groupby("tissue", sort=False).agg(brain_in_top=("is_brain", "sum"),
                                               neighbours=("neighbour", "; ".join)).reset_index())
