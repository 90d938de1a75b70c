"""Header robustness on files nobody here wrote: pydicom's own test files (odd transfer
syntaxes, truncated and malformed files, enhanced multi-frame MR, RT objects...)."""

import warnings
from pathlib import Path

import pytest

pydicom_data = pytest.importorskip("pydicom.data")

from parotidlib.dicom.headers import scan  # noqa: E402
from parotidlib.dicom.importer import import_dicom  # noqa: E402
from parotidlib.dicom.volume import SeriesError, read_volume  # noqa: E402

ROOT = Path(pydicom_data.get_testdata_files()[0]).parent


def test_scan_and_stack_pydicom_test_files_without_crashing():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = scan(ROOT)
        assert result.n_dicom > 50 and result.series
        for problem in result.problems:  # every problem names a file that exists
            assert problem.path and Path(problem.path).exists(), problem
        for series in result.series:
            if series.modality != "MR":
                continue
            try:
                image = read_volume(series)
            except SeriesError as exc:  # refused with reasons, never another exception
                assert exc.problems
            else:
                assert image.ndim == 3


def test_import_of_a_tree_without_usable_patients_refuses_each_and_writes_a_report(tmp_path):
    clinical = tmp_path / "clinical.csv"
    clinical.write_text("patient_id,histology\nnobody,warthin\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = import_dicom(ROOT, tmp_path / "cohort", clinical=clinical, progress=False)
    assert not result.imported and result.refused
    assert result.not_in_dicom == ["nobody"]
    assert result.report.is_file() and result.manifest.is_file()
