"""Nothing merged, nothing stale, no name leaked: two people with one PatientID, series from
two studies, a re-import after the clinical table changed, the pseudonymisation key (empty,
raced by many processes), and patient names typed into descriptions and ROI names."""

import copy as copy_module
import logging
import multiprocessing
import shutil
from pathlib import Path

import pandas as pd
import pydicom
import pytest
from pydicom.uid import generate_uid

from parotidlib.dicom.importer import MIN_KEY_BYTES, import_dicom, load_key

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


EXPORT = (2, 3)  # patients and seed of the module's export (conftest.source)


def patients(export):
    return sorted(p for p in export.iterdir() if p.is_dir() and p.name.startswith("SYN"))


def edit(folder, **tags):
    for f in folder.rglob("*.dcm"):
        ds = pydicom.dcmread(f)
        for keyword, value in tags.items():
            setattr(ds, keyword, value)
        ds.save_as(f)


def run(export, tmp_path, name="C", **kwargs):
    return import_dicom(export, tmp_path / name, clinical=export / "clinical.csv",
                        progress=False, **kwargs)


def test_two_people_with_one_patient_id_are_not_merged(export, tmp_path):
    a, b = patients(export)
    shutil.rmtree(a / "ce_t1")
    shutil.rmtree(a / "ce_t1_rtstruct")
    for series in ("t1", "t2", "t1_rtstruct", "t2_rtstruct"):
        shutil.rmtree(b / series)
    edit(b, PatientID=a.name, PatientName="OTHER^PERSON", PatientBirthDate="19790101")
    result = run(export, tmp_path)
    assert not result.imported  # one patient from both people before, exit 0
    (problems,) = result.refused.values()
    text = " ".join(problems)
    assert "disagree on PatientName (2 different values" in text
    assert "disagree on PatientBirthDate" in text
    # the conflict is named, the values are not: in the messages, the report or anywhere
    written = result.report.read_text() + text
    assert "OTHER" not in written and "19790101" not in written and "SYNTHETIC" not in written


def test_series_of_two_studies_are_combined_only_where_the_rules_say_so(export, tmp_path):
    a, _ = patients(export)
    edit(a / "t2", StudyInstanceUID=generate_uid())
    edit(a / "t2_rtstruct", StudyInstanceUID=generate_uid())
    result = run(export, tmp_path)
    problems = result.refused[next(iter(result.refused))]
    assert "come from 2 different studies (StudyInstanceUID)" in problems[0]
    rules = tmp_path / "rules.yaml"
    rules.write_text("combine: {studies: true}\n")
    again = run(export, tmp_path, "C2", rules=rules)
    assert len(again.imported) == 2


def test_a_reimport_redoes_a_patient_whose_clinical_row_changed(export, tmp_path):
    first = run(export, tmp_path)
    assert len(first.imported) == 2
    table = pd.read_csv(export / "clinical.csv", dtype=str)
    old = table.loc[0, "histology"]
    new = "malignant" if old != "malignant" else "warthin"
    table.loc[0, "histology"] = new
    table.to_csv(export / "clinical.csv", index=False)
    again = run(export, tmp_path)
    assert len(again.imported) == 1 and len(again.resumed) == 1  # all resumed before
    manifest = pd.read_csv(again.manifest, dtype=str)
    identities = pd.read_csv(again.identities, dtype=str)
    pid = identities.set_index("dicom_patient_id").loc[table.loc[0, "patient_id"], "patient_id"]
    assert manifest.set_index("patient_id").loc[pid, "histology"] == new
    report = pd.read_csv(again.report, dtype=str).set_index("patient_id")
    assert report.loc[pid, "status"] == "reimported (inputs changed)"
    # a changed DICOM file changes the key too
    a = patients(export)[1]
    f = next((a / "t2").iterdir())
    f.write_bytes(f.read_bytes())  # same bytes, new modification time
    third = run(export, tmp_path)
    assert len(third.imported) == 1 and len(third.resumed) == 1


def test_an_empty_or_short_key_is_refused_saying_how_to_recover(tmp_path):
    key = tmp_path / "cohort.key"
    key.write_text("")
    with pytest.raises(ValueError, match=r"holds 0 byte\(s\).*To recover"):
        load_key(key)
    key.write_text("abcd\n")
    with pytest.raises(ValueError, match=r"holds 2 byte\(s\)"):
        load_key(key)
    key.write_text("not hex\n")
    with pytest.raises(ValueError, match="cannot be read as hex"):
        load_key(key)


def _load(path):
    return load_key(Path(path)).hex()


def test_many_imports_racing_on_a_new_key_get_one_full_key(tmp_path):
    with multiprocessing.get_context("fork").Pool(6) as pool:
        for trial in range(10):
            path = tmp_path / f"race{trial}.key"
            keys = pool.map(_load, [str(path)] * 12, chunksize=1)
            assert len(set(keys)) == 1 and len(bytes.fromhex(keys[0])) == MIN_KEY_BYTES
            assert path.read_text().strip() == keys[0]
    assert not list(tmp_path.glob(".*.tmp"))


def test_patient_names_in_descriptions_and_roi_names_never_reach_a_file(export, tmp_path,
                                                                         caplog):
    a, b = patients(export)
    edit(a, PatientName="MUELLER^HANS")
    edit(a / "t1", SeriesDescription="T1 SE AX MUELLER")
    rs = next((a / "t1_rtstruct").iterdir())
    ds = pydicom.dcmread(rs)
    ds.StructureSetLabel = "HANS MUELLER final"
    extra = copy_module.deepcopy(ds.StructureSetROISequence[2])
    extra.ROINumber, extra.ROIName = 9, "GTV MUELLER"  # an ROI without contours
    ds.StructureSetROISequence.append(extra)
    ds.save_as(rs)
    # patient b: two T1 candidates, one named with the patient's name: refused
    edit(b, PatientName="SCHMIDT^ANNA")
    copy = b / "t1_copy"
    shutil.copytree(b / "t1", copy)
    edit(copy, SeriesDescription="T1 SE AX SCHMIDT", SeriesInstanceUID=generate_uid())
    for f in copy.iterdir():
        ds = pydicom.dcmread(f)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(f)
    with caplog.at_level(logging.INFO):
        result = run(export, tmp_path)
    assert len(result.imported) == 1 and len(result.refused) == 1
    report_text = result.report.read_text()
    assert "(no rule matches)" in report_text  # the ROI is listed, by number
    (problems,) = result.refused.values()
    console = " ".join(problems) + caplog.text
    assert "t1: 2 candidate series" in console and "'T1 SE AX ***'" in console
    for path in result.cohort_dir.rglob("*"):
        if path.is_file() and path.suffix in (".csv", ".json"):
            text = path.read_text()
            for word in ("MUELLER", "HANS", "SCHMIDT", "ANNA", "T1 SE AX"):
                assert word not in text, (path, word)
    assert "SCHMIDT" not in console and "MUELLER" not in console
    report = pd.read_csv(result.report, dtype=str, keep_default_na=False)
    refused = report[report["status"] == "refused"].iloc[0]["problems"]
    assert "<free text withheld>" in refused


def test_a_second_import_into_the_same_folder_exits_naming_the_first(export, tmp_path):
    import subprocess
    import sys

    from parotidlib.io import FolderLockedError

    out = tmp_path / "C"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from parotidlib.io import folder_lock\n"
         f"with folder_lock({str(out)!r}, 'the import folder'):\n"
         "    print('locked', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(FolderLockedError, match=str(holder.pid)):
            run(export, tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert len(run(export, tmp_path).imported) == 2  # the kernel released the killed holder's
