"""What a header says about diffusion (parotidlib.dicom.diffusion): the b-value from the
standard element first and a vendor's private element only where the Manufacturer and the
private creator are that vendor's; the directionality; the ImageType kind as Siemens, GE,
Philips and the DICOM ADC parametric map write it; the real-world unit of the values."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from parotidlib.dicom.diffusion import (
    b_value,
    directionality,
    image_kind,
    real_world_map,
    rescale,
)


def dataset(manufacturer: str = "", **tags) -> Dataset:
    ds = Dataset()
    if manufacturer:
        ds.Manufacturer = manufacturer
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    return ds


def private(ds: Dataset, group: int, creator: str, element: int, vr: str, value) -> Dataset:
    ds.private_block(group, creator, create=True).add_new(element, vr, value)
    return ds


def siemens(b, direction=None) -> Dataset:
    ds = private(dataset("SIEMENS"), 0x0019, "SIEMENS MR HEADER", 0x0C, "IS", b)
    if direction:
        private(ds, 0x0019, "SIEMENS MR HEADER", 0x0D, "CS", direction)
    return ds


def ge(values) -> Dataset:
    return private(dataset("GE MEDICAL SYSTEMS"), 0x0043, "GEMS_PARM_01", 0x39, "IS", values)


def philips(b, direction=None) -> Dataset:
    ds = private(dataset("Philips Medical Systems"), 0x2001, "Philips Imaging DD 001", 0x03,
                 "FL", b)
    if direction:
        private(ds, 0x2001, "Philips Imaging DD 001", 0x04, "CS", direction)
    return ds


def enhanced(b, direction="ISOTROPIC") -> Dataset:
    item = Dataset()
    item.DiffusionBValue = b
    item.DiffusionDirectionality = direction
    group = Dataset()
    group.MRDiffusionSequence = Sequence([item])
    ds = dataset("SIEMENS")
    ds.SharedFunctionalGroupsSequence = Sequence([group])
    return ds


# (header, b-value expected, element that gave it)
B_VALUES = [
    ("Canon: DiffusionBValue", dataset("CANON_MEC", DiffusionBValue=1000.0), 1000.0, "(0018,9087)"),
    ("GE writes the standard one too", dataset("GE MEDICAL SYSTEMS", DiffusionBValue=800.0),
     800.0, "(0018,9087)"),
    ("standard before private", private(dataset("SIEMENS", DiffusionBValue=1000.0), 0x0019,
                                        "SIEMENS MR HEADER", 0x0C, "IS", "50"), 1000.0,
     "(0018,9087)"),
    ("Siemens XA enhanced: MR Diffusion Sequence", enhanced(800.0), 800.0, "(0018,9117)"),
    ("Siemens VE classic: (0019,100C)", siemens("800"), 800.0, "(0019,xx0C)"),
    ("Siemens b0", siemens("0"), 0.0, "(0019,xx0C)"),
    ("GE: (0043,1039) value 1", ge(["1000", "8", "0", "0"]), 1000.0, "(0043,xx39)"),
    ("GE multi-b: bias 10^9 removed", ge(["1000000800", "8", "0", "0"]), 800.0, "(0043,xx39)"),
    ("GE multi-b b0 with bias", ge(["1000000000", "8", "0", "0"]), 0.0, "(0043,xx39)"),
    ("Philips: (2001,1003)", philips(800.0), 800.0, "(2001,xx03)"),
    ("a Siemens element on a GE file is not read",
     private(dataset("GE MEDICAL SYSTEMS"), 0x0019, "SIEMENS MR HEADER", 0x0C, "IS", "800"),
     None, ""),
    ("a GE element under another creator is not read",
     private(dataset("GE MEDICAL SYSTEMS"), 0x0043, "SOMEONE ELSE", 0x39, "IS",
             ["800", "8", "0", "0"]), None, ""),
    ("no manufacturer: private elements not read",
     private(dataset(), 0x0019, "SIEMENS MR HEADER", 0x0C, "IS", "800"), None, ""),
    ("a T2 says nothing", dataset("SIEMENS", ImageType=["ORIGINAL", "PRIMARY", "M"]), None,
     ""),
]


@pytest.mark.parametrize(("name", "ds", "expected", "tag"), B_VALUES,
                         ids=[c[0] for c in B_VALUES])
def test_b_value_table(name, ds, expected, tag):
    value, source = b_value(ds)
    assert value == expected
    assert tag in source


DIRECTIONS = [
    ("standard", dataset("GE MEDICAL SYSTEMS", DiffusionDirectionality="DIRECTIONAL"),
     "DIRECTIONAL"),
    ("enhanced isotropic", enhanced(800.0, "ISOTROPIC"), "ISOTROPIC"),
    ("Siemens raw direction (0019,100D)", siemens("800", "DIRECTIONAL"), "DIRECTIONAL"),
    ("Philips isotropic 'I'", philips(800.0, "I"), "ISOTROPIC"),
    ("Philips oblique 'O'", philips(800.0, "O"), "DIRECTIONAL"),
    ("silent", dataset("CANON_MEC"), ""),
]


@pytest.mark.parametrize(("name", "ds", "expected"), DIRECTIONS, ids=[c[0] for c in DIRECTIONS])
def test_directionality_table(name, ds, expected):
    assert directionality(ds) == expected


# ImageType as the scanners write it -> kind
KINDS = [
    ("DERIVED\\PRIMARY\\DIFFUSION\\ADC\\ND\\NORM", "adc"),              # Siemens
    ("DERIVED\\PRIMARY\\ADC\\ADC", "adc"),                               # Philips
    ("DERIVED\\PRIMARY\\ADC_UNSPECIFIED\\ADC", "adc"),
    ("DERIVED\\PRIMARY\\DIFFUSION\\ADC", "adc"),                         # PS3.17 EEEE
    ("DERIVED\\PRIMARY\\DIFFUSION\\TRACEW\\ND\\NORM", "trace"),          # Siemens
    ("ORIGINAL\\PRIMARY\\DIFFUSION\\NONE\\ND\\MOSAIC", "diffusion"),     # Siemens raw
    ("DERIVED\\PRIMARY\\DIFFUSION\\EXP\\ND", "eadc"),                    # Siemens eADC
    ("DERIVED\\PRIMARY\\EADC", "eadc"),                                  # Philips eADC
    ("DERIVED\\PRIMARY\\DIFFUSION\\CALC_BVALUE\\TRACEW\\ND", "computed"),  # Siemens cDWI
    ("DERIVED\\PRIMARY\\DIFFUSION\\FA\\ND", "tensor"),
    ("ORIGINAL\\PRIMARY\\OTHER", ""),                                    # GE DWI: silent
    ("ORIGINAL\\PRIMARY\\M\\ND", ""),
    ("", ""),
]


@pytest.mark.parametrize(("image_type", "expected"), KINDS, ids=[c[0] or "-" for c in KINDS])
def test_image_kind_table(image_type, expected):
    assert image_kind(image_type) == expected


def test_real_world_map_and_rescale():
    unit = Dataset()
    unit.CodeValue, unit.CodingSchemeDesignator, unit.CodeMeaning = "um2/s", "UCUM", "um2/s"
    item = Dataset()
    item.RealWorldValueSlope, item.RealWorldValueIntercept = 1.0, 0.0
    item.MeasurementUnitsCodeSequence = Sequence([unit])
    ds = dataset("SIEMENS", RescaleSlope="2", RescaleIntercept="0")
    assert real_world_map(ds) is None
    ds.RealWorldValueMappingSequence = Sequence([item])
    found = real_world_map(ds)
    assert (found.slope, found.intercept, found.units) == (1.0, 0.0, "um2/s")
    assert rescale(ds) == (2.0, 0.0)
    assert rescale(dataset()) == (1.0, 0.0)
    group = Dataset()
    group.RealWorldValueMappingSequence = Sequence([item])
    framed = dataset("Philips")
    framed.PerFrameFunctionalGroupsSequence = Sequence([group])
    assert real_world_map(framed).units == "um2/s"  # the frame's Real World Value Mapping
