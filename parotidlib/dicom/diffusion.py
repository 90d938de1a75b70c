"""What one DICOM header says about diffusion: the b-value, the directionality, the kind of
diffusion image (ImageType) and the real-world unit of its pixel values.

The standard attributes come first; a vendor's private element is read only where the
Manufacturer (0008,0070) names that vendor and the element's private creator is the vendor's
(DICOM PS3.5 7.8.1: a private element ``(gggg,xxEE)`` belongs to the block that the creator
in ``(gggg,00xx)`` reserves), never by tag number alone:

* **b-value** (s/mm²): DiffusionBValue (0018,9087) at the top level (PS3.3 C.8.13.5.9; Canon
  and GE write it, Siemens XA enhanced), else in the frame's MR Diffusion Sequence (0018,9117)
  of an enhanced object (C.7.6.16; shared, else the frame's); else Siemens (0019,xx0C)
  ``B_value`` of "SIEMENS MR HEADER", GE (0043,xx39) of "GEMS_PARM_01" (the first value;
  multi-b and synthetic-b series add a bias of 1 000 000 000, removed here), Philips
  (2001,xx03) ``Diffusion B-Factor`` of "Philips Imaging DD 001".
* **Directionality**: DiffusionDirectionality (0018,9075) (DIRECTIONAL, ISOTROPIC, BMATRIX,
  NONE; PS3.3 C.8.13.5.9), else Siemens (0019,xx0D) of "SIEMENS MR HEADER", else Philips
  (2001,xx04) ``Diffusion Direction`` ("I" isotropic, "O"/"R"/"P"/"S" a direction).
* **Kind** (:func:`image_kind`): the values of ImageType (0008,0008) (PS3.3 C.7.6.1.1.2,
  C.8.13.1.1.1) as the vendors write them: ``ADC`` an ADC map (Siemens
  DERIVED\\PRIMARY\\DIFFUSION\\ADC, Philips DERIVED\\PRIMARY\\ADC\\ADC, the DICOM ADC
  parametric map, PS3.17 Annex EEEE); ``EXP``/``EADC`` an exponential ADC map (Siemens,
  Philips); ``CALC_BVALUE``/``COMPUTED``/``SYNTHETIC`` a computed b-value image; ``FA`` and
  the other tensor maps; ``TRACEW``/``ISODWI``/``TRACE`` a trace-weighted image;
  ``DIFFUSION`` a diffusion image of no further kind.
* **Unit of the pixel values** (:func:`real_world_map`): the Real World Value Mapping Sequence
  (0040,9096) with its RealWorldValueSlope (0040,9225) / -Intercept (0040,9224) and
  MeasurementUnitsCodeSequence (0040,08EA, UCUM; PS3.3 C.7.6.16.2.11), at the top level or
  in the frame's functional groups; and the Modality LUT's RescaleSlope (0028,1053) /
  RescaleIntercept (0028,1052) (C.11.1; for enhanced objects the Pixel Value Transformation
  Macro, C.7.6.16.2.9), which the volume readers apply.

References
----------
DICOM PS3.3 C.8.13.5.9 (MR Diffusion Macro), C.7.6.1.1.2 (Image Type), C.7.6.16.2.11 (Real
World Value Mapping Macro); PS3.17 Annex EEEE (ADC parametric maps). dcm2niix's vendor notes
(github.com/rordenlab/dcm2niix: GE/README.md, Philips/README.md, Canon/README.md; issues
#274 for Siemens XA private b-values, #602 for the GE bias).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parotidlib.dicom.functional_groups import functional_group

#: Private creators and elements (group, element offset in the block) by vendor.
SIEMENS = ("SIEMENS MR HEADER", 0x0019)
GE = ("GEMS_PARM_01", 0x0043)
PHILIPS = ("Philips Imaging DD 001", 0x2001)
#: GE adds this to the b-value in (0043,xx39) of multi-b and synthetic-b series (dcm2niix
#: issue #602).
GE_B_BIAS = 1_000_000_000

#: ImageType values, by what they make of a series (see :func:`image_kind`).
ADC_TYPES = frozenset({"ADC"})
EADC_TYPES = frozenset({"EXP", "EADC", "EXPONENTIAL", "EXP_ADC"})
COMPUTED_TYPES = frozenset({"CALC_BVALUE", "COMPUTED", "SYNTHETIC", "CALC_BVAL"})
TENSOR_TYPES = frozenset({"FA", "COLFA", "TENSOR", "DIFFUSION_ANISO", "RA", "VR"})
TRACE_TYPES = frozenset({"TRACEW", "ISODWI", "TRACE"})
DIFFUSION_TYPES = frozenset({"DIFFUSION", "DWI"})

#: UCUM units of diffusivity -> mm²/s per unit (PS3.17 Annex EEEE uses "mm2/s" and "um2/s").
UNIT_MM2_S = {"mm2/s": 1.0, "um2/s": 1e-6, "10-6.mm2/s": 1e-6, "10*-6.mm2/s": 1e-6,
              "10-3.mm2/s": 1e-3, "10*-3.mm2/s": 1e-3, "m2/s": 1e6, "cm2/s": 100.0}


def image_types(image_type: str) -> frozenset[str]:
    """The values of ImageType (0008,0008) as written ("DERIVED\\PRIMARY\\ADC"), upper case."""
    return frozenset(v.strip().upper() for v in str(image_type or "").split("\\") if v.strip())


def image_kind(image_type: str) -> str:
    """What ImageType says the image is: ``"eadc"``, ``"computed"``, ``"tensor"``, ``"adc"``,
    ``"trace"``, ``"diffusion"`` or ``""`` (silent), tested in that order, so that an
    exponential ADC (Siemens DERIVED\\PRIMARY\\DIFFUSION\\EXP) or a computed b-value image
    (DERIVED\\PRIMARY\\DIFFUSION\\CALC_BVALUE\\TRACEW) is never taken for an ADC or a measured
    DWI."""
    values = image_types(image_type)
    for kind, types in (("eadc", EADC_TYPES), ("computed", COMPUTED_TYPES),
                        ("tensor", TENSOR_TYPES), ("adc", ADC_TYPES), ("trace", TRACE_TYPES),
                        ("diffusion", DIFFUSION_TYPES)):
        if values & types:
            return kind
    if any(v.startswith("ADC_") for v in values):  # Philips ADC_UNSPECIFIED and the like
        return "adc"
    return ""


#: Two b-values closer than this (s/mm²) are one.
B_TOLERANCE = 1.0


def split_directional(files):
    """``(kept, directional)``: the images (files or frames) of one b-value split into the
    directional ones (DiffusionDirectionality DIRECTIONAL or BMATRIX, PS3.3 C.8.13.5.9,
    whose ImageType is not a trace) and the rest (the trace / isotropic image, or images that
    say nothing)."""
    directional = [f for f in files if getattr(f, "diffusion_directionality", "") in (
        "DIRECTIONAL", "BMATRIX") and image_kind(getattr(f, "image_type", "")) != "trace"]
    kept = [f for f in files if f not in directional]
    return kept, directional


def _get(ds, keyword: str):
    try:
        value = ds.get(keyword)
    except Exception:  # a malformed element: absent
        return None
    return None if value is None or value == "" else value


def _number(value) -> float | None:
    try:
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace").strip("\0 ")
        if isinstance(value, list | tuple) or hasattr(value, "__getitem__") and not isinstance(
                value, str):
            value = value[0]
        out = float(value)
    except Exception:
        return None
    return out if np.isfinite(out) else None


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).strip("\0 ").strip().upper()


def _private(ds, vendor: tuple[str, int], element: int):
    """The value of private element ``element`` of ``vendor``'s block, None when absent."""
    creator, group = vendor
    try:
        return ds.private_block(group, creator)[element].value
    except Exception:  # no such creator or element
        return None


def _vendor(ds) -> str:
    maker = _text(_get(ds, "Manufacturer"))
    if "SIEMENS" in maker:
        return "siemens"
    if maker.startswith("GE") or "GENERAL ELECTRIC" in maker:
        return "ge"
    if "PHILIPS" in maker:
        return "philips"
    return ""


def _diffusion_item(ds, frame: int):
    """The frame's MR Diffusion Sequence item (PS3.3 C.8.13.5.9), else the shared one."""

    return functional_group(ds, "MRDiffusionSequence", frame)


def b_value(ds, frame: int = 0) -> tuple[float | None, str]:
    """``(b-value in s/mm², which element said so)``; ``(None, "")`` when nothing does.

    Parameters
    ----------
    ds : pydicom.Dataset
    frame : int
        0-based frame of a multi-frame object.
    """
    value = _number(_get(ds, "DiffusionBValue"))
    if value is not None:
        return value, "DiffusionBValue (0018,9087)"
    item = _diffusion_item(ds, frame)
    if item is not None:
        value = _number(_get(item, "DiffusionBValue"))
        if value is not None:
            return value, "MR Diffusion Sequence (0018,9117) DiffusionBValue"
    vendor = _vendor(ds)
    if vendor == "siemens":
        value = _number(_private(ds, SIEMENS, 0x0C))
        if value is not None:
            return value, "Siemens B_value (0019,xx0C)"
    elif vendor == "ge":
        value = _number(_private(ds, GE, 0x39))
        if value is not None:
            return float(value % GE_B_BIAS), "GE (0043,xx39) value 1"
    elif vendor == "philips":
        value = _number(_private(ds, PHILIPS, 0x03))
        if value is not None:
            return value, "Philips Diffusion B-Factor (2001,xx03)"
    return None, ""


def directionality(ds, frame: int = 0) -> str:
    """DIRECTIONAL, ISOTROPIC, BMATRIX or NONE as the header says, "" when it does not."""
    value = _text(_get(ds, "DiffusionDirectionality"))
    if not value:
        item = _diffusion_item(ds, frame)
        if item is not None:
            value = _text(_get(item, "DiffusionDirectionality"))
    if value:
        return value
    vendor = _vendor(ds)
    if vendor == "siemens":
        return _text(_private(ds, SIEMENS, 0x0D))
    if vendor == "philips":
        letter = _text(_private(ds, PHILIPS, 0x04))
        if letter == "I":
            return "ISOTROPIC"
        if letter in ("O", "R", "P", "S", "A", "F", "H", "L"):
            return "DIRECTIONAL"
    return ""


@dataclass(frozen=True)
class RealWorldMap:
    """One Real World Value Mapping item: value = stored pixel * slope + intercept, in
    ``units`` (the UCUM CodeValue of MeasurementUnitsCodeSequence, "" when not given)."""

    slope: float
    intercept: float
    units: str


def real_world_map(ds, frame: int = 0) -> RealWorldMap | None:
    """The first Real World Value Mapping item (0040,9096) with a slope, at the top level or
    in the frame's functional groups (PS3.3 C.7.6.16.2.11); None when there is none."""

    items = list(_get(ds, "RealWorldValueMappingSequence") or [])
    if not items:
        item = functional_group(ds, "RealWorldValueMappingSequence", frame)
        items = [item] if item is not None else []
    for item in items:
        slope = _number(_get(item, "RealWorldValueSlope"))
        if slope is None:
            continue
        intercept = _number(_get(item, "RealWorldValueIntercept")) or 0.0
        units = ""
        codes = _get(item, "MeasurementUnitsCodeSequence")
        if codes:
            units = str(_get(codes[0], "CodeValue") or "").strip()
        return RealWorldMap(slope, intercept, units)
    return None


def rescale(ds, frame: int = 0) -> tuple[float, float]:
    """``(RescaleSlope, RescaleIntercept)`` (0028,1053) / (0028,1052), for enhanced objects
    from the Pixel Value Transformation Sequence (0028,9145); (1, 0) when absent."""

    slope = _number(_get(ds, "RescaleSlope"))
    intercept = _number(_get(ds, "RescaleIntercept"))
    if slope is None:
        item = functional_group(ds, "PixelValueTransformationSequence", frame)
        if item is not None:
            slope = _number(_get(item, "RescaleSlope"))
            intercept = _number(_get(item, "RescaleIntercept"))
    return (1.0 if slope in (None, 0.0) else slope), (intercept or 0.0)
