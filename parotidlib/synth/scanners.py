"""Scanner profiles (Xia et al. 2021, Table 2) and per-patient acquisition protocols.

Each profile holds the published TR/TE ranges of the three series, the slice thickness and
pixel size ranges, and what the table does not give but a simulation needs: the CE-T1
sequence (GE: 2-D spoiled gradient echo with a large flip angle at TR 175-280 ms; Siemens:
3-D VIBE with a small flip angle at TR 4-6 ms), fat saturation on CE-T1, the signal-to-noise
ratio and the intensity scale of the scanner's images. A patient's protocol draws every
value uniformly inside its range and places each series' grid around the glands.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parotidlib.constants import SERIES

__all__ = ["SCANNERS", "ScannerProfile", "SeriesProtocol", "draw_protocols"]

Range = tuple[float, float]


@dataclass(frozen=True)
class ScannerProfile:
    """One scanner of Table 2.

    Attributes
    ----------
    name : str
        Manifest ``scanner`` value.
    field_strength_t : float
    tr_ms, te_ms : dict[str, Range]
        Repetition and echo time ranges per series (``t1``, ``ce_t1``, ``t2``), Table 2.
    ce_flip_deg : Range
        Flip angle of the CE-T1 spoiled gradient echo (not in Table 2; typical protocols).
    slice_thickness_mm, pixel_size_mm : Range
        Table 2.
    snr : dict[str, Range]
        Signal-to-noise ratio of muscle per series (higher at 3 T).
    level : dict[str, Range]
        Stored intensity of muscle per series (the receiver scale differs by vendor).
    fat_sat : Range
        Fat-suppression efficiency on CE-T1 (fraction of fat signal removed).
    """

    name: str
    field_strength_t: float
    tr_ms: dict[str, Range]
    te_ms: dict[str, Range]
    ce_flip_deg: Range
    slice_thickness_mm: Range
    pixel_size_mm: Range
    snr: dict[str, Range]
    level: dict[str, Range]
    fat_sat: Range


SCANNERS: dict[str, ScannerProfile] = {
    p.name: p for p in (
        ScannerProfile(
            name="GE Signa HDxt 1.5T", field_strength_t=1.5,
            tr_ms={"t1": (280.0, 540.0), "ce_t1": (175.0, 280.0), "t2": (2740.0, 3600.0)},
            te_ms={"t1": (8.5, 10.4), "ce_t1": (1.8, 3.4), "t2": (84.0, 88.0)},
            ce_flip_deg=(60.0, 80.0), slice_thickness_mm=(5.0, 7.0), pixel_size_mm=(0.4, 0.6),
            snr={"t1": (14.0, 22.0), "ce_t1": (12.0, 20.0), "t2": (8.0, 13.0)},
            level={"t1": (280.0, 360.0), "ce_t1": (250.0, 330.0), "t2": (120.0, 170.0)},
            fat_sat=(0.75, 0.92)),
        ScannerProfile(
            name="Siemens Verio 3T", field_strength_t=3.0,
            tr_ms={"t1": (450.0, 620.0), "ce_t1": (4.1, 6.0), "t2": (2500.0, 5240.0)},
            te_ms={"t1": (12.0, 16.0), "ce_t1": (1.5, 2.5), "t2": (78.0, 91.0)},
            ce_flip_deg=(9.0, 12.0), slice_thickness_mm=(4.5, 7.2), pixel_size_mm=(0.65, 0.97),
            snr={"t1": (20.0, 30.0), "ce_t1": (16.0, 26.0), "t2": (12.0, 18.0)},
            level={"t1": (170.0, 230.0), "ce_t1": (150.0, 210.0), "t2": (80.0, 120.0)},
            fat_sat=(0.85, 0.95)),
        ScannerProfile(
            name="Siemens Skyra 3T", field_strength_t=3.0,
            tr_ms={"t1": (250.0, 1560.0), "ce_t1": (3.7, 6.0), "t2": (2500.0, 5790.0)},
            te_ms={"t1": (2.5, 12.0), "ce_t1": (1.4, 2.4), "t2": (78.0, 83.0)},
            ce_flip_deg=(9.0, 12.0), slice_thickness_mm=(4.0, 6.0), pixel_size_mm=(0.4, 0.85),
            snr={"t1": (22.0, 34.0), "ce_t1": (18.0, 28.0), "t2": (13.0, 20.0)},
            level={"t1": (380.0, 480.0), "ce_t1": (330.0, 430.0), "t2": (160.0, 220.0)},
            fat_sat=(0.85, 0.95)),
    )
}


@dataclass(frozen=True)
class SeriesProtocol:
    """Acquisition and grid of one series of one patient.

    Grid: axial slices, voxel (i, j, k) centred at ``origin_mm + (i, j, k) * spacing`` in
    patient coordinates (mm, RAS+); the world (scanner) position adds the patient's offset.

    Attributes
    ----------
    series : str
        ``t1``, ``ce_t1`` or ``t2``.
    sequence : str
        ``"se"`` (spin echo) or ``"spgr"`` (spoiled gradient echo, after contrast).
    tr_ms, te_ms, flip_deg : float
    fat_sat : float
        Fraction of the fat signal suppressed (0 without fat saturation).
    pixel_mm, thickness_mm : float
        In-plane pixel size; slice thickness (= slice spacing, contiguous slices).
    shape : tuple of int
        (nx, ny, nz).
    origin_mm : tuple of float
        Patient coordinates of voxel (0, 0, 0)'s centre.
    level, snr : float
        Stored muscle intensity and muscle signal-to-noise ratio.
    bias : tuple of float
        Coefficients (x, y, radial, z) of the log bias field, per decimetre.
    """

    series: str
    sequence: str
    tr_ms: float
    te_ms: float
    flip_deg: float
    fat_sat: float
    pixel_mm: float
    thickness_mm: float
    shape: tuple[int, int, int]
    origin_mm: tuple[float, float, float]
    level: float
    snr: float
    bias: tuple[float, float, float, float]

    def axis(self, k: int) -> np.ndarray:
        """Voxel centres (patient mm) along axis ``k`` (0 x, 1 y, 2 z)."""
        step = self.thickness_mm if k == 2 else self.pixel_mm
        return self.origin_mm[k] + step * np.arange(self.shape[k], dtype=np.float64)

    def affine(self, world_offset_mm: np.ndarray) -> np.ndarray:
        """4 x 4 RAS+ voxel-to-world affine (voxel axes along +x, +y, +z)."""
        aff = np.diag([self.pixel_mm, self.pixel_mm, self.thickness_mm, 1.0])
        aff[:3, 3] = np.asarray(self.origin_mm) + np.asarray(world_offset_mm)
        return aff


def _u(rng: np.random.Generator, r: Range) -> float:
    return float(rng.uniform(r[0], r[1]))


def _grid(rng: np.random.Generator, pixel: float, body: np.ndarray, centre_xy: np.ndarray
          ) -> tuple[tuple[int, int], tuple[float, float]]:
    """Matrix and in-plane origin: FOV 160-190 mm (x) and 80-95 % of it (y), body inside."""
    width = body[:, 1] - body[:, 0]
    fov_x = max(rng.uniform(160.0, 190.0), width[0] + 14.0)
    fov_y = max(fov_x * rng.uniform(0.8, 0.95), width[1] + 14.0)
    n = (int(round(fov_x / pixel)), int(round(fov_y / pixel)))
    origin = centre_xy - (np.asarray(n) - 1) / 2.0 * pixel
    return n, (float(origin[0]), float(origin[1]))


def draw_protocols(rng: np.random.Generator, profile: ScannerProfile, body: np.ndarray,
                   z_extent: tuple[float, float], pixel_scale: float = 1.0
                   ) -> dict[str, SeriesProtocol]:
    """Draw one patient's three series protocols.

    T1 and CE-T1 share slice thickness, pixel size and slice positions (CE-T1 is often
    shifted in-plane by a millimetre or two); T2 has its own pixel size, thickness and slice
    positions (its first slice is offset by a fraction of a slice), so that T2 is always on a
    different grid. Every slab covers the glands and tumours plus about one slice above and
    below.

    Parameters
    ----------
    rng : numpy.random.Generator
    profile : ScannerProfile
    body : ndarray, shape (2, 2)
        [[xmin, xmax], [ymin, ymax]] of the body (mm).
    z_extent : (float, float)
        Lowest and highest z (mm) of the glands and tumours.
    pixel_scale : float
        Multiplies every pixel size (> 1 makes small volumes for tests; 1 is the study).

    Returns
    -------
    dict[str, SeriesProtocol]
        Keys ``t1``, ``ce_t1``, ``t2``.
    """
    centre = body.mean(axis=1)
    z_lo, z_hi = z_extent
    pixel_t1 = round(_u(rng, profile.pixel_size_mm) * pixel_scale, 4)
    pixel_t2 = round(_u(rng, profile.pixel_size_mm) * pixel_scale, 4)
    thick_t1 = round(_u(rng, profile.slice_thickness_mm), 1)
    thick_t2 = round(_u(rng, profile.slice_thickness_mm), 1)
    shift_t1 = rng.uniform(-4.0, 4.0, size=2)
    shift_ce = shift_t1 if rng.random() < 0.6 else shift_t1 + rng.uniform(-2.0, 2.0, size=2)
    shift_t2 = rng.uniform(-4.0, 4.0, size=2)

    def slab(thickness: float, offset_frac: float) -> tuple[int, float]:
        margin = thickness * rng.uniform(0.5, 1.2)
        nz = int(np.ceil((z_hi - z_lo + 2 * margin) / thickness))
        z0 = (z_lo + z_hi) / 2.0 - (nz - 1) / 2.0 * thickness + offset_frac * thickness
        return nz, round(float(z0), 3)

    nz_t1, z0_t1 = slab(thick_t1, rng.uniform(-0.25, 0.25))
    nz_t2, z0_t2 = slab(thick_t2, rng.uniform(0.25, 0.75))
    (nx1, ny1), o1 = _grid(rng, pixel_t1, body, centre + shift_t1)
    (nx2, ny2), o2 = _grid(rng, pixel_t2, body, centre + shift_t2)
    o_ce = (o1[0] + shift_ce[0] - shift_t1[0], o1[1] + shift_ce[1] - shift_t1[1])
    geometry = {
        "t1": (pixel_t1, thick_t1, (nx1, ny1, nz_t1), (*o1, z0_t1)),
        "ce_t1": (pixel_t1, thick_t1, (nx1, ny1, nz_t1), (*o_ce, z0_t1)),
        "t2": (pixel_t2, thick_t2, (nx2, ny2, nz_t2), (*o2, z0_t2)),
    }
    out = {}
    for series in SERIES:
        pixel, thick, shape, origin = geometry[series]
        spgr = series == "ce_t1"
        out[series] = SeriesProtocol(
            series=series, sequence="spgr" if spgr else "se",
            tr_ms=round(_u(rng, profile.tr_ms[series]), 2),
            te_ms=round(_u(rng, profile.te_ms[series]), 2),
            flip_deg=round(_u(rng, profile.ce_flip_deg), 1) if spgr else 90.0,
            fat_sat=_u(rng, profile.fat_sat) if spgr else 0.0,
            pixel_mm=pixel, thickness_mm=thick, shape=shape,
            origin_mm=tuple(round(float(v), 3) for v in origin),
            level=_u(rng, profile.level[series]), snr=_u(rng, profile.snr[series]),
            bias=(rng.normal(0.0, 0.12), rng.normal(0.0, 0.12), rng.uniform(0.05, 0.3),
                  rng.normal(0.0, 0.1)),
        )
    return out
