"""Simulate one patient: anatomy, tumour(s), tissues, protocols, phantom, three series (and,
on request, the diffusion series from the same phantom)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parotidlib.constants import SERIES
from parotidlib.synth.anatomy import NeckAnatomy, draw_anatomy, make_room
from parotidlib.synth.composition import PatientSpec
from parotidlib.synth.diffusion import (
    ADC_UNIT_MM2_S,
    B_VALUE,
    acquire_diffusion,
    diffusion_rng,
    draw_adc_table,
    draw_epi_protocol,
)
from parotidlib.synth.phantom import build_phantom
from parotidlib.synth.render import acquire, render_series
from parotidlib.synth.scanners import SCANNERS, SeriesProtocol, draw_protocols
from parotidlib.synth.tissues import draw_tissue_table
from parotidlib.synth.tumours import Tumour, draw_tumour

__all__ = ["SimulatedPatient", "patient_rng", "simulate_patient"]


@dataclass
class SimulatedPatient:
    """The three series of one patient, with what produced them.

    Attributes
    ----------
    spec : PatientSpec
    images : dict[str, ndarray of int16]
        Per series (``t1``, ``ce_t1``, ``t2``; with diffusion also ``dwi``, the b = 800 image,
        and ``adc``, in µm²/s on the DWI grid), shape ``protocols[s].shape``.
    labels : dict[str, ndarray of uint8]
        Per series, on that series' grid.
    affines : dict[str, ndarray (4, 4)]
        RAS+ voxel-to-world (scanner) affines (mm).
    protocols : dict[str, SeriesProtocol]
    tumours : list of Tumour
        In patient coordinates (world = patient + ``world_offset_mm``).
    anatomy : NeckAnatomy
    world_offset_mm : ndarray (3,)
    """

    spec: PatientSpec
    images: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    affines: dict[str, np.ndarray]
    protocols: dict[str, SeriesProtocol]
    tumours: list[Tumour]
    anatomy: NeckAnatomy
    world_offset_mm: np.ndarray

    def manifest_fields(self) -> dict[str, float]:
        """The optional manifest columns (acquisition parameters) of this patient."""
        p = self.protocols
        return {
            "field_strength_t": SCANNERS[self.spec.scanner].field_strength_t,
            "t1_tr_ms": p["t1"].tr_ms, "t1_te_ms": p["t1"].te_ms,
            "t2_tr_ms": p["t2"].tr_ms, "t2_te_ms": p["t2"].te_ms,
            "ce_t1_tr_ms": p["ce_t1"].tr_ms, "ce_t1_te_ms": p["ce_t1"].te_ms,
            "ce_t1_flip_deg": p["ce_t1"].flip_deg,
            "pixel_size_mm": p["t1"].pixel_mm, "slice_thickness_mm": p["t1"].thickness_mm,
            "t2_pixel_size_mm": p["t2"].pixel_mm, "t2_slice_thickness_mm": p["t2"].thickness_mm,
        }

    def diffusion_fields(self) -> dict[str, float]:
        """The diffusion manifest columns (``DIFFUSION_OPTIONAL_COLUMNS`` of generate.py)."""
        d = self.protocols["dwi"]
        return {"adc_scale_mm2_s": ADC_UNIT_MM2_S, "dwi_b_value_s_mm2": B_VALUE,
                "dwi_tr_ms": d.tr_ms, "dwi_te_ms": d.te_ms,
                "dwi_pixel_size_mm": d.pixel_mm, "dwi_slice_thickness_mm": d.thickness_mm}


def patient_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of patient ``index`` of a cohort with ``seed`` (independent of n)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, index)))


def _z_extent(anatomy: NeckAnatomy, tumours: list[Tumour]) -> tuple[float, float]:
    lo, hi = np.inf, -np.inf
    for g in anatomy.glands.values():
        lo, hi = min(lo, g.centre[2] - g.h_down), max(hi, g.centre[2] + g.h_up)
    for t in tumours:
        lo, hi = min(lo, t.centre[2] - t.radii[2]), max(hi, t.centre[2] + t.radii[2])
    return float(lo), float(hi)


def simulate_patient(spec: PatientSpec, seed: int, pixel_scale: float = 1.0,
                     diffusion: bool = False) -> SimulatedPatient:
    """Simulate the T1, CE-T1 and T2 series and label maps of one patient.

    Parameters
    ----------
    spec : PatientSpec
        Cohort-level attributes (histology, side, sex, age, scanner).
    seed : int
        Cohort seed; the patient's stream is ``SeedSequence(seed, spawn_key=(1, index))``.
    pixel_scale : float
        Multiplies the pixel sizes (> 1 gives small volumes, for tests).
    diffusion : bool
        Also the DWI (b = 800) and ADC series, on one EPI grid
        (:mod:`parotidlib.synth.diffusion`), drawn from the patient's diffusion stream
        (spawn key 2): the other series are the same with or without.

    Returns
    -------
    SimulatedPatient
    """
    rng = patient_rng(seed, spec.index)
    profile = SCANNERS[spec.scanner]
    anatomy = draw_anatomy(rng, spec.sex, spec.age)
    sides = ("right", "left") if spec.tumor_side == "both" else (spec.tumor_side,)
    tumours = [draw_tumour(rng, spec.histology, anatomy.glands[side]) for side in sides]
    anatomy = make_room(anatomy, [(t.side, t.centre[0], t.centre[1], t.inplane_radius_mm)
                                  for t in tumours])
    table = draw_tissue_table(rng, profile.field_strength_t, spec.age)
    body = anatomy.extent()
    protocols = draw_protocols(rng, profile, body, _z_extent(anatomy, tumours), pixel_scale)
    # where the patient lies in the scanner: near isocentre, glands near z = 0
    world_offset = np.array([rng.normal(0.0, 3.0), rng.normal(15.0, 8.0),
                             rng.uniform(-25.0, 25.0)]).round(2)
    lo = np.min([[p.axis(0)[0], p.axis(1)[0]] for p in protocols.values()], axis=0)
    hi = np.max([[p.axis(0)[-1], p.axis(1)[-1]] for p in protocols.values()], axis=0)
    xy_bounds = np.stack([lo - 3.0, hi + 3.0], axis=1)
    phantom = build_phantom(rng, anatomy, tumours, table, xy_bounds,
                            margin_mm=1.5 + max(p.pixel_mm for p in protocols.values()))
    centre = np.array([body[0].mean(), body[1].mean(), 0.0])
    images, labels, affines = {}, {}, {}
    for series in SERIES:
        proto = protocols[series]
        signal, labels[series] = render_series(phantom, proto)
        images[series] = acquire(signal, phantom, proto, centre, rng)
        affines[series] = proto.affine(world_offset)
    if diffusion:
        drng = diffusion_rng(seed, spec.index)
        adc, fat_adc = draw_adc_table(drng, tumours)
        epi = draw_epi_protocol(drng, profile.field_strength_t, protocols,
                                _z_extent(anatomy, tumours))
        dwi, adc_map, epi_labels = acquire_diffusion(phantom, epi, adc, fat_adc, centre, drng)
        protocols = {**protocols, "dwi": epi, "adc": epi}
        images.update(dwi=dwi, adc=adc_map)
        labels.update(dwi=epi_labels, adc=epi_labels)
        affines.update(dwi=epi.affine(world_offset), adc=epi.affine(world_offset))
    return SimulatedPatient(spec=spec, images=images, labels=labels, affines=affines,
                            protocols=protocols, tumours=tumours, anatomy=anatomy,
                            world_offset_mm=world_offset)
