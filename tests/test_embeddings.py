"""Tissue embeddings: the matrix of PMI and GAIN-GTEx, PCA, UMAP and nearest tissues."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gtex_models.analysis import embeddings
from gtex_models.data.cohort import Cohort
from gtex_models.models.networks import embedding_size
from gtex_models.models.registry import make_imputer

TINY = {"hidden_sizes": (16,), "max_epochs": 1}


@pytest.fixture(scope="module")
def toy() -> pd.DataFrame:
    """Four tissues with known geometry: two brain regions close together, lung opposite, liver orthogonal."""
    return pd.DataFrame([[1.0, 0.1, 0.0], [0.9, 0.2, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
                        index=pd.Index(["Brain - Cortex", "Brain - Putamen (basal ganglia)", "Lung", "Liver"],
                                       name="tissue"),
                        columns=["dim_1", "dim_2", "dim_3"])


@pytest.mark.parametrize("method", ["pmi", "gain"])
def test_embedding_matrix_of_a_fitted_model(small_cohort: Cohort, method: str):
    imputer = make_imputer(method, **TINY).fit(small_cohort.split("train"))
    matrix = embeddings.tissue_embeddings(imputer)
    assert matrix.index.tolist() == list(imputer.tissues)
    assert matrix.shape == (len(imputer.tissues), embedding_size(len(imputer.tissues)))
    network = imputer.networks["network" if method == "pmi" else "generator"]
    np.testing.assert_array_equal(matrix.to_numpy(), network.covariates.tissue.weight.detach().numpy())


def test_models_without_networks_have_no_embeddings(small_cohort: Cohort):
    with pytest.raises(ValueError, match="no networks"):
        embeddings.tissue_embeddings(make_imputer("mean").fit(small_cohort.split("train")))


def test_pca_coordinates(toy: pd.DataFrame):
    coords, explained = embeddings.pca_coordinates(toy)
    assert coords.columns.tolist() == ["tissue", "pc_1", "pc_2"]
    assert coords["tissue"].tolist() == toy.index.tolist()
    assert explained[0] >= explained[1] > 0 and explained.sum() <= 1 + 1e-9
    line = pd.DataFrame(np.outer(np.arange(5.0), [1.0, 2.0, -1.0]), index=list("abcde"))
    _, explained = embeddings.pca_coordinates(line)
    assert explained[0] == pytest.approx(1.0)


def test_nearest_tissues_by_cosine_similarity(toy: pd.DataFrame):
    nearest = embeddings.nearest_tissues(toy, "Brain - Cortex", k=2)
    assert nearest["neighbour"].tolist() == ["Brain - Putamen (basal ganglia)", "Liver"]
    assert nearest["rank"].tolist() == [1, 2]
    cortex, putamen = toy.iloc[0].to_numpy(), toy.iloc[1].to_numpy()
    expected = cortex @ putamen / (np.linalg.norm(cortex) * np.linalg.norm(putamen))
    assert nearest["cosine_similarity"].iloc[0] == pytest.approx(expected)
    everyone = embeddings.nearest_tissues(toy, k=3)
    assert len(everyone) == 12 and (everyone["tissue"] != everyone["neighbour"]).all()
    with pytest.raises(ValueError, match="Unknown tissue"):
        embeddings.nearest_tissues(toy, "Kidney")


def test_brain_neighbours_counts_brain_regions_among_the_nearest(toy: pd.DataFrame):
    table = embeddings.brain_neighbours(toy, k=2)
    assert table["tissue"].tolist() == ["Brain - Cortex", "Brain - Putamen (basal ganglia)"]
    assert table["brain_in_top"].tolist() == [1, 1]  # the other region, then Liver (orthogonal beats opposite)
    assert table["neighbours"].iloc[0] == "Brain - Putamen (basal ganglia); Liver"
    assert embeddings.brain_neighbours(toy, k=3)["brain_in_top"].tolist() == [1, 1]
    assert embeddings.brain_neighbours(toy.drop(index=toy.index[:2])).empty


def test_umap_coordinates_keep_each_tissues_neighbours():
    """Two tight clusters of tissues stay apart and keep their neighbours in the UMAP plane.

    Trustworthiness (scikit-learn, 4 neighbours, cosine): measured 0.977; random coordinates give
    0.535 on average and 0.788 at most over 200 draws.
    """
    from sklearn.manifold import trustworthiness

    rng = np.random.default_rng(0)
    matrix = pd.DataFrame(np.vstack([rng.normal(0, 0.1, (6, 5)) + 3, rng.normal(0, 0.1, (6, 5)) - 3]),
                          index=[f"t{i}" for i in range(12)])
    coords = embeddings.umap_coordinates(matrix, n_neighbors=4)
    assert coords.columns.tolist() == ["tissue", "umap_1", "umap_2"]
    assert coords["tissue"].tolist() == matrix.index.tolist()
    plane = coords[["umap_1", "umap_2"]].to_numpy()
    assert np.isfinite(plane).all()
    assert trustworthiness(matrix.to_numpy(), plane, n_neighbors=4, metric="cosine") > 0.9
    distances = np.linalg.norm(plane[:, None] - plane[None], axis=-1) + np.diag(np.full(12, np.inf))
    cluster = np.arange(12) // 6
    np.testing.assert_array_equal(cluster[distances.argmin(axis=1)], cluster)  # nearest is a clustermate
