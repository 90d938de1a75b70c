"""Config sections: one dataclass per job, their keys disjoint, validation where it was."""

import pytest

from parotidlib import params as P
from parotidlib.config import (
    SECTIONS,
    EvaluationConfig,
    ParamsError,
    RadiomicsConfig,
    SaliencyConfig,
    field_names,
    section,
)


def test_the_radiomics_and_saliency_settings_have_sections_of_their_own():
    assert field_names(RadiomicsConfig) == ("radiomics", "radiomics_model")
    assert field_names(SaliencyConfig) == ("saliency", "saliency_method", "saliency_examples")
    assert field_names(EvaluationConfig) == ("malignant_threshold", "bootstrap_resamples",
                                             "bootstrap_seed", "checkpoint",
                                             "predict_batch_size")
    assert SECTIONS["radiomics"] is RadiomicsConfig and SECTIONS["saliency"] is SaliencyConfig


def test_sections_share_no_key_except_channels():
    """Each params key belongs to one section (``channels`` is curation's; stages that
    read it list it beside their section)."""
    seen: dict[str, str] = {}
    for name, cls in SECTIONS.items():
        for key in field_names(cls):
            assert key not in seen, f"{key} in both {seen[key]} and {name}"
            seen[key] = name
    assert set(seen) == set(P.valid_keys())


def test_a_section_is_built_from_flat_params_with_its_own_keys():
    params = P.resolve({"radiomics_model": "random_forest", "saliency_examples": 5})
    assert section(params, RadiomicsConfig) == RadiomicsConfig(True, "random_forest")
    assert section(params, SaliencyConfig).saliency_examples == 5
    assert section(params, EvaluationConfig) == EvaluationConfig()


@pytest.mark.parametrize("cls, bad", [
    (RadiomicsConfig, {"radiomics": 1}), (RadiomicsConfig, {"radiomics_model": "svm"}),
    (SaliencyConfig, {"saliency": "yes"}), (SaliencyConfig, {"saliency_method": "cam"}),
    (SaliencyConfig, {"saliency_examples": -1}),
])
def test_radiomics_and_saliency_values_are_checked(cls, bad):
    with pytest.raises(ParamsError, match=next(iter(bad))):
        cls(**bad)
    with pytest.raises(ParamsError, match=next(iter(bad))):
        P.resolve(bad)


def test_radiomics_and_saliency_errors_come_before_the_evaluation_ones():
    """As when the three sections were one: the first invalid key reported is unchanged."""
    with pytest.raises(ParamsError, match="radiomics_model"):
        P.resolve({"radiomics_model": "svm", "malignant_threshold": -1})
    with pytest.raises(ParamsError, match="saliency_method"):
        P.resolve({"saliency_method": "cam", "checkpoint": "middle"})
