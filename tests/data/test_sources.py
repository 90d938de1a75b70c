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


def _pair(klass, folder, stem, values):
    """Write a two-file image (``stem.hdr`` + ``stem.img``) of ``klass`` holding ``values``."""
    import nibabel as nib
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    nib.save(klass(np.asarray(values, dtype=np.int16), np.eye(4)), folder / f"{stem}.hdr")
    return folder / f"{stem}.hdr", folder / f"{stem}.img"


@pytest.mark.parametrize("column", ["t1", "t1_labels"])
def test_fingerprint_covers_the_img_of_an_analyze_pair_named_by_its_hdr(tmp_path, column):
    """Issue 21 item 8: replacing only ``t1.img`` (voxels) of an Analyze pair, or only the
    ``.img`` of a label map's NIfTI pair, changes the fingerprint; so does a ``.mat`` that
    appears beside an Analyze pair (nibabel then reads its affine from it)."""
    import shutil

    import nibabel as nib
    import numpy as np
    import scipy.io

    from parotidlib.data.manifest import companion_files, image_sha256

    folder = tmp_path / "cohort"
    zeros, ones = np.zeros((4, 4, 3)), np.ones((4, 4, 3))
    _pair(nib.AnalyzeImage, folder, "t1", zeros)
    _pair(nib.Nifti1Pair, folder, "t1_labels", zeros)
    manifest = folder / "manifest.csv"
    manifest.write_text("patient_id,t1,t1_labels\nP1,t1.hdr,t1_labels.hdr\n")
    before = sources.cohort_fingerprint(manifest)
    assert sources.cohort_fingerprint(manifest) == before  # deterministic
    digest = image_sha256(folder / f"{column}.hdr")  # curation's record of the file

    klass = nib.AnalyzeImage if column == "t1" else nib.Nifti1Pair
    hdr, img = _pair(klass, tmp_path / "other", column, ones)  # same grid, other voxels
    header_bytes = (folder / f"{column}.hdr").read_bytes()
    assert hdr.read_bytes() == header_bytes  # the header stays byte for byte the same
    shutil.copyfile(img, folder / f"{column}.img")  # only the .img is replaced
    assert nib.load(folder / f"{column}.hdr").get_fdata().max() == 1  # the reader sees it
    after = sources.cohort_fingerprint(manifest)
    assert after != before
    assert image_sha256(folder / f"{column}.hdr") != digest

    mat = folder / f"{column}.mat"
    if column == "t1":  # nibabel reads an Analyze pair's affine from a .mat beside it
        assert mat in companion_files(folder / "t1.hdr")
        scipy.io.savemat(mat, {"M": np.diag([2.0, 2.0, 2.0, 1.0])})
        assert nib.load(folder / "t1.hdr").affine[0, 0] == -2.0
        assert sources.cohort_fingerprint(manifest) != after


def test_image_digest_of_single_file_formats_is_the_files_own(tmp_path):
    """A NIfTI file has no companions: its digest (cohort fingerprint, curation's
    files_sha256) is the file's SHA-256, as before, so such cohorts are not recurated."""
    from parotidlib.data.manifest import companion_files, image_sha256
    from parotidlib.io import sha256_file

    path = tmp_path / "a.nii.gz"
    path.write_bytes(b"one")
    assert companion_files(path) == [] and image_sha256(path) == sha256_file(path)
    assert companion_files(tmp_path / "a.nrrd") == []  # not a nibabel format: the file only
    assert companion_files(tmp_path / "T1.HDR") == [tmp_path / "T1.IMG", tmp_path / "T1.MAT"]
    assert companion_files(tmp_path / "t1.img.gz") == [tmp_path / "t1.hdr.gz",
                                                       tmp_path / "t1.mat.gz"]
