"""Where a run's cohort comes from, and the cohort fingerprint."""

import pytest

from parotidlib.data import sources


def test_user_manifest_relative_missing_and_fingerprint(tmp_path):
    folder = tmp_path / "cohort"
    folder.mkdir()
    (folder / "a.nii.gz").write_bytes(b"one")
    manifest = folder / "manifest.csv"
    manifest.write_text("patient_id,t1\nP1,a.nii.gz\n")
    assert sources.manifest_path({"cohort_manifest": str(manifest)}) == manifest
    assert not sources.is_synthetic(manifest)
    before = sources.cohort_fingerprint(manifest)
    (folder / "a.nii.gz").write_bytes(b"two")  # same manifest, other image content
    assert sources.cohort_fingerprint(manifest) != before
    with pytest.raises(FileNotFoundError, match="cohort_manifest"):
        sources.manifest_path({"cohort_manifest": str(folder / "missing.csv")})


def test_builtin_cohort_is_generated_once_into_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PAROTIDLIB_DATA_DIR", str(tmp_path))
    params = {"cohort_manifest": "", "synth_patients": 3, "synth_seed": 2}
    manifest = sources.manifest_path(params)
    assert manifest.parent == tmp_path / "synthetic_n3_s2" and sources.is_synthetic(manifest)
    stamp = manifest.stat().st_mtime_ns
    assert sources.manifest_path(params) == manifest and manifest.stat().st_mtime_ns == stamp
    assert sources.builtin_cohort_dir(233, 0) == tmp_path / "synthetic"


def test_fingerprint_reads_paths_as_the_cohort_reader_does_and_fails_on_a_missing_file(tmp_path):
    folder = tmp_path / "cohort"
    folder.mkdir()
    (folder / "a.nii.gz").write_bytes(b"one")
    manifest = folder / "manifest.csv"
    manifest.write_text("patient_id,t1\nP1,a.nii.gz \n")  # a trailing space, stripped
    before = sources.cohort_fingerprint(manifest)
    (folder / "a.nii.gz").write_bytes(b"two")
    assert sources.cohort_fingerprint(manifest) != before  # the replaced volume is noticed
    manifest.write_text("patient_id,t1\nP1,gone.nii.gz\n")
    with pytest.raises(FileNotFoundError, match=r"patient 'P1', column 't1'.*gone\.nii\.gz"):
        sources.cohort_fingerprint(manifest)
