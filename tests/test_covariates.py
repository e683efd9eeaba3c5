"""Sample covariates: sex and age parsed from files, and encoded for the networks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gtex_models.data.covariates import CovariateEncoder, UnknownTissueError, parse_age, parse_sex


def test_sex_codes_and_words() -> None:
    assert parse_sex([1, 2, "1.0", "M", "female", "", None, "x"]) == [
        "male", "female", "male", "male", "female", "unknown", "unknown", "unknown"]


def test_age_brackets_numbers_and_unknowns() -> None:
    np.testing.assert_array_equal(parse_age(["60-69", "20 - 29", "47", 33.5, "", "old", -3, 200]),
                                  [65.0, 25.0, 47.0, 33.5, np.nan, np.nan, np.nan, np.nan])


def test_encoding_standardises_age_with_the_fitted_samples() -> None:
    samples = pd.DataFrame({"tissue": ["Lung", "Liver", "Lung", "Liver"], "sex": ["male", "female", "unknown", "?"],
                            "age": [30.0, 50.0, 70.0, np.nan]})
    encoder = CovariateEncoder.fit(samples)
    assert encoder.tissues == ("Liver", "Lung")
    assert (encoder.age_mean, encoder.age_std) == pytest.approx((50.0, np.std([30.0, 50.0, 70.0])))
    encoded = encoder.encode(samples)
    np.testing.assert_array_equal(encoded["tissue"], [1, 0, 1, 0])
    np.testing.assert_array_equal(encoded["sex"], [1, 0, 2, 2])
    np.testing.assert_allclose(encoded["age"], [-np.sqrt(1.5), 0.0, np.sqrt(1.5), 0.0], rtol=1e-6)  # unknown: 0
    assert encoded["age"].dtype == np.float32
    assert CovariateEncoder.from_dict(encoder.to_dict()) == encoder
    with pytest.raises(UnknownTissueError, match="did you mean 'Lung'"):
        encoder.encode(samples.assign(tissue="Lungs"))
