import pandas as pd
import pytest

from parotidlib.data.tables import scanner_table, slice_counts, table1


@pytest.fixture
def manifest():
    return pd.DataFrame({
        "patient_id": ["P1", "P2", "P3", "P4"],
        "age": [30, 50, 70, 90],
        "sex": ["M", "F", "M", "M"],
        "histology": ["warthin", "malignant", "pleomorphic_adenoma", "warthin"],
        "tumor_side": ["left", "right", "both", "left"],
        "scanner": ["GE", "GE", "Verio", "GE"],
        "t1_tr_ms": [300, 500, 450, 400],
        "pixel_size_mm": [0.5, 0.45, 0.7, 0.6],
    })


def test_table1_counts_and_percentages(manifest):
    t = table1(manifest)["value"]
    assert t[("Age", "years")] == "60.0 (30~90)"
    assert t[("Sex", "Male")] == "3 (75.0%)"
    assert t[("Pathology type", "Warthin tumour")] == "2 (50.0%)"
    assert t[("Site", "Both")] == "1 (25.0%)"
    with pytest.raises(ValueError, match="manifest"):
        table1(manifest.iloc[:0])


def test_scanner_table_ranges(manifest):
    t = scanner_table(manifest)
    assert t.loc["Patients", "GE"] == "3 (75.0%)"
    assert t.loc["T1-weighted TR", "GE"] == "300.0~500.0 ms"
    assert t.loc["Pixel size", "Verio"] == "0.70~0.70 mm"


def test_slice_counts():
    slices = pd.DataFrame({"patient_id": ["a", "a", "b", "c"],
                           "label": ["free", "warthin", "malignant", "malignant"],
                           "split": ["train", "train", "train", "test"]})
    t = slice_counts(slices)
    assert t.loc["malignant", "train"] == 1 and t.loc["malignant", "test"] == 1
    assert t.loc["pleomorphic_adenoma"].sum() == 0
    assert t.loc["patients", "train"] == 2 and t.loc["total slices", "train"] == 3
