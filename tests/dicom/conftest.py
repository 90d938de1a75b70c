"""Shared fixtures of the DICOM tests: a small synthetic export written once per module and
an editable copy of it per test (with the NIfTI cohort it was written from beside it)."""

import shutil
from pathlib import Path

import pytest

from parotidlib.synth.dicom import write_dicom_cohort


@pytest.fixture(scope="module")
def source(request, tmp_path_factory) -> Path:
    """A synthetic DICOM export (tiny images) of the module's ``EXPORT = (n_patients, seed)``,
    written once per module."""
    n_patients, seed = request.module.EXPORT
    base = tmp_path_factory.mktemp("dicom")
    return Path(write_dicom_cohort(base / "D", n_patients=n_patients, seed=seed, pixel_scale=4,
                                   jobs=1))


@pytest.fixture
def export(source, tmp_path):
    """An editable copy of the module's ``source`` export, with its NIfTI reference beside."""
    copy = tmp_path / "D"
    shutil.copytree(source, copy)
    for sibling in source.parent.glob(".D.*"):
        shutil.copytree(sibling, tmp_path / sibling.name)
    return copy
