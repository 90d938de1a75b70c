"""Params profiles: defaults, conversion, unknown keys, every shipped profile resolves."""

from pathlib import Path

import pytest

from parotidlib import params as P
from parotidlib.io import sha256_json
from parotidlib.run.pipeline import stage_params
from parotidlib.run.stages import stage_named

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("profile", sorted((ROOT / "params").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_profile_resolves(profile):
    resolved = P.load_params(profile)
    assert set(resolved) == set(P.valid_keys())


def test_unknown_key_is_refused_with_the_valid_keys(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("epochs: 3\nbatchsize: 16\n")
    with pytest.raises(P.ParamsError) as err:
        P.load_params(path)
    message = str(err.value)
    assert "batchsize" in message and "did you mean 'batch_size'" in message
    assert "Valid keys:" in message and "batch_size" in message


def test_values_are_converted_and_validated(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("lr: 1e-6\nchannels: [t1, t2]\nepochs: 5\n")
    resolved = P.load_params(path)
    assert resolved["lr"] == pytest.approx(1e-6)
    assert resolved["channels"] == ("t1", "t2")
    with pytest.raises(P.ParamsError, match="epochs"):
        P.resolve({"epochs": -1})
    with pytest.raises(P.ParamsError, match="batch_size"):
        P.resolve({"batch_size": "many"})


def test_overrides_and_fingerprint_are_stable(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("epochs: 5\n")
    a = P.load_params(path)
    b = P.load_params(path, {"epochs": 6})
    assert b["epochs"] == 6
    train = stage_named("train")
    assert stage_params(train, a) == stage_params(train, P.load_params(path))
    assert sha256_json(stage_params(train, a)) != sha256_json(stage_params(train, b))
    assert P.resolve(__import__("yaml").safe_load(P.to_yaml(a))) == a


def test_not_a_mapping_and_missing_file(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(P.ParamsError, match="mapping"):
        P.load_params(path)
    with pytest.raises(P.ParamsError, match="not found"):
        P.load_params(tmp_path / "missing.yaml")


def test_integers_are_not_silently_truncated_and_empty_strings_stay_empty():
    with pytest.raises(P.ParamsError, match="malignant_threshold must be an integer"):
        P.resolve({"malignant_threshold": 2.5})
    with pytest.raises(P.ParamsError, match="seeds"):
        P.resolve({"seeds": [0, 1.5]})
    with pytest.raises(P.ParamsError, match="seeds must not repeat"):
        P.resolve({"seeds": [0, 0]})
    assert P.resolve({"epochs": 3.0})["epochs"] == 3
    assert P.resolve({"cohort_manifest": None})["cohort_manifest"] == ""


def test_library_defaults_are_the_quick_cpu_profile_and_paper_yaml_is_the_paper():
    """A notebook run as it is (library defaults) gets params/default.yaml's values; the
    paper's protocol (Xia et al. 2021, Methods) is one ``-f params/paper.yaml`` away."""
    defaults = P.defaults()
    default_profile = P.load_params(ROOT / "params" / "default.yaml")
    assert default_profile == defaults
    paper = P.load_params(ROOT / "params" / "paper.yaml")
    assert (paper["image_size"], paper["epochs"], paper["lr"], paper["batch_size"]) == (
        224, 1200, 1e-6, 32)
    assert (paper["lr_decay_start"], paper["lr_decay_every"], paper["lr_decay_factor"]) == (
        600, 100, 0.8)
    assert defaults["epochs"] < 100 and defaults["image_size"] < 224
