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


# --------------------------------------------------------------------------- the study's series


def test_the_default_series_are_the_papers_and_channels_follow_them():
    from parotidlib.config import CurationConfig
    from parotidlib.constants import CHANNELS, SERIES

    config = CurationConfig()
    assert (config.series, config.labels_from, config.channels) == (SERIES, "", CHANNELS)
    assert config.study.channels == CHANNELS
    diffusion = CurationConfig(series=["t1", "t2", "adc"], channels=["t1", "t2", "adc", "gland"],
                               labels_from="t1")
    assert diffusion.series == ("t1", "t2", "adc") and diffusion.channels[-2:] == ("adc", "gland")
    assert diffusion.study.label_columns == ("t1_labels",)


@pytest.mark.parametrize("params, message", [
    ({"channels": ["t1", "adc"]},
     r"channels entry 'adc' is not one of series \[t1, ce_t1, t2\] \(\+ gland\)"),
    ({"series": ["t1", "t2", "adc"], "channels": ["t1", "ce_t1"]},
     r"channels entry 'ce_t1' is not one of series \[t1, t2, adc\] \(\+ gland\)"),
    ({"series": ["t1", "adc", "t2", "adc"], "channels": ["t1"]},
     r"series lists 'adc' twice; got \['t1', 'adc', 't2', 'adc'\]"),
    ({"labels_from": "adc"},
     r"labels_from must be empty .* or one of series \['t1', 'ce_t1', 't2'\], got 'adc'"),
    ({"series": ["t2", "adc"], "channels": ["t2"]}, r"series must include 't1'"),
    ({"series": ["t1", "gland"], "channels": ["t1"]}, r"series entry 'gland' is not a series name"),
    ({"series": ["t1", "t2_labels"], "channels": ["t1"]}, r"series entry 't2_labels'"),
    ({"series": ["t1", "age"], "channels": ["t1"]}, r"series entry 'age'"),
    ({"series": [], "channels": ["t1"]}, r"series must be a non-empty list"),
    ({"series": ["t1", "t2", "adc"], "channels": ["adc", "t1"]},
     r"canonical order \['t1', 't2', 'adc', 'gland'\]"),
])
def test_series_labels_from_and_channels_are_refused_with_the_value(params, message):
    with pytest.raises(ParamsError, match=message):
        P.resolve(params)
