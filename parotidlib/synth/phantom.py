"""One patient's digital phantom: tissue and MR-parameter maps on fine grids (mm).

The z-invariant anatomy is one axial map on a fine in-plane grid (:data:`FINE_MM`). Around
each parotid gland a 3-D region on a fine grid (:data:`FINE_MM` in-plane, :data:`FINE_Z_MM`
through-plane) holds the gland and its tumour; elsewhere the region repeats the axial map,
so that the two agree where they meet. Parameters vary inside a tissue by smooth random
fields (texture): lobular fat in the gland, cellular islands and enhancement heterogeneity
in tumours, a little proton-density variation everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parotidlib.synth.anatomy import NeckAnatomy, paint_static
from parotidlib.synth.sampling import axis_coords, random_field
from parotidlib.synth.tissues import PROTECTED, Tissue, TissueTable, field_factors
from parotidlib.synth.tumours import Tumour, paint_tumour, tumour_radius

__all__ = ["FINE_MM", "FINE_Z_MM", "Maps", "Phantom", "Region", "build_phantom"]

#: Fine grid spacing in-plane and through-plane (mm).
FINE_MM = 0.5
FINE_Z_MM = 1.0
#: Texture fields: name -> Gaussian smoothing scale (mm).
FIELD_SIGMA_MM = {"coarse": 4.0, "mid": 1.5, "mid2": 1.5, "lob": 0.7}

_N = len(Tissue)


def _amplitudes(pairs: dict[Tissue, float]) -> np.ndarray:
    out = np.zeros(_N, np.float32)
    for tissue, value in pairs.items():
        out[tissue] = value
    return out


# Texture amplitudes per tissue (relative, except fat fraction: absolute).
_PD_AMP = _amplitudes({t: 0.04 for t in Tissue if t not in (Tissue.AIR, Tissue.CORTEX)})
_T2_AMP = _amplitudes({Tissue.MUSCLE: 0.04, Tissue.GLAND: 0.05, Tissue.FAT: 0.02})
_CONC_AMP = _amplitudes({Tissue.GLAND: 0.2, Tissue.MUCOSA: 0.2})
_FF_AMP = _amplitudes({Tissue.GLAND: 0.16, Tissue.MARROW: 0.08})


@dataclass
class Maps:
    """Per-voxel tissue and MR parameters (arrays of one shape).

    tissue: uint8 :class:`Tissue`; pd (relative); t1_ms, t2_ms; conc_mM (contrast agent);
    ff (fat fraction).
    """

    tissue: np.ndarray
    pd: np.ndarray
    t1_ms: np.ndarray
    t2_ms: np.ndarray
    conc_mM: np.ndarray
    ff: np.ndarray


@dataclass
class Region:
    """The 3-D part of the phantom around one gland.

    Attributes
    ----------
    side : str
    ix, iy : slice
        Where the region lies on the axial fine grid.
    z : ndarray (k,)
        Fine z positions (mm).
    dynamic : ndarray of bool, shape (n, m, k)
        Voxels of the gland or tumour; all others repeat the axial map.
    maps : Maps
        Parameters of the ``dynamic`` voxels only (1-D arrays, in ``dynamic``'s C order).
    tumour : ndarray of bool, shape (n, m, k)
        Tumour voxels (label 3).
    gland : ndarray of bool, shape (n, m, k)
        Gland or tumour voxels (the side's label region).
    """

    side: str
    ix: slice
    iy: slice
    z: np.ndarray
    dynamic: np.ndarray
    maps: Maps
    tumour: np.ndarray
    gland: np.ndarray


@dataclass
class Phantom:
    """A patient's phantom: axial maps on (x, y), and the gland regions."""

    x: np.ndarray
    y: np.ndarray
    maps2d: Maps
    regions: list[Region]
    table: TissueTable


def parameter_maps(tissue: np.ndarray, table: TissueTable, fields: dict[str, np.ndarray],
                   t2_amp: np.ndarray, conc_amp: np.ndarray) -> Maps:
    """MR parameters per voxel: the table value of its tissue, modulated by the textures."""
    pd = table.pd[tissue] * (1.0 + _PD_AMP[tissue] * fields["coarse"])
    t1 = table.t1_ms[tissue]
    t2 = table.t2_ms[tissue] * (1.0 + t2_amp[tissue] * fields["mid2"])
    conc = table.conc_mM[tissue] * np.maximum(0.0, 1.0 + conc_amp[tissue] * fields["mid"])
    ff = np.clip(table.fat_fraction[tissue] + _FF_AMP[tissue] * fields["lob"], 0.0, 1.0)
    return Maps(tissue, pd.astype(np.float32), t1.astype(np.float32), t2.astype(np.float32),
                conc.astype(np.float32), ff.astype(np.float32))


def _index_range(axis: np.ndarray, lo: float, hi: float) -> slice:
    return slice(int(np.searchsorted(axis, lo)), int(np.searchsorted(axis, hi, side="right")))


def _tumour_table(table: TissueTable, tumours: list[Tumour]) -> tuple[TissueTable, np.ndarray,
                                                                       np.ndarray]:
    """The patient's table with the tumours' own values, and the texture amplitudes.

    Tumour values are drawn at 1.5 T and converted to the patient's field strength; the two
    tumours of a bilateral case share one set of values (the second tumour's).
    """
    pd, t1, t2, conc = (a.copy() for a in (table.pd, table.t1_ms, table.t2_ms, table.conc_mM))
    k1, k2 = field_factors(table.field_strength_t)
    t2_amp, conc_amp = _T2_AMP.copy(), _CONC_AMP.copy()
    for tumour in tumours:
        for tissue, (p, r1, r2, c) in tumour.tissue_values.items():
            pd[tissue], t1[tissue], t2[tissue], conc[tissue] = p, r1 * k1, r2 * k2, c
        for tissue, (a2, ac) in tumour.heterogeneity.items():
            t2_amp[tissue], conc_amp[tissue] = a2, ac
    out = TissueTable(pd=pd, t1_ms=t1, t2_ms=t2, fat_fraction=table.fat_fraction,
                      conc_mM=conc, fat_pd=table.fat_pd, fat_t1_ms=table.fat_t1_ms,
                      fat_t2_ms=table.fat_t2_ms, field_strength_t=table.field_strength_t)
    return out, t2_amp, conc_amp


def _fields(rng: np.random.Generator, coords: list[np.ndarray]) -> dict[str, np.ndarray]:
    return {name: random_field(rng, coords, sigma) for name, sigma in FIELD_SIGMA_MM.items()}


def _sub_box(bounds: np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray
             ) -> tuple[slice, slice, slice]:
    """Index slices of the grid (x, y, z) inside ``bounds`` [[lo, hi]] x 3 (mm)."""
    return tuple(_index_range(a, lo, hi) for a, (lo, hi) in zip((x, y, z), bounds, strict=True))


def region_bounds(anatomy: NeckAnatomy, tumours: list[Tumour], side: str,
                  margin_mm: float = 2.0) -> np.ndarray:
    """[[xmin, xmax], [ymin, ymax], [zmin, zmax]] (mm) of a side's gland and tumours."""
    b = anatomy.glands[side].bounds(margin_mm=margin_mm)
    for t in tumours:
        if t.side == side:
            tb = t.bounds(margin_mm=margin_mm)
            b = np.stack([np.minimum(b[:, 0], tb[:, 0]), np.maximum(b[:, 1], tb[:, 1])], axis=1)
    return b


def build_phantom(rng: np.random.Generator, anatomy: NeckAnatomy, tumours: list[Tumour],
                  table: TissueTable, xy_bounds: np.ndarray, margin_mm: float = 2.0
                  ) -> Phantom:
    """Paint the phantom on fine grids covering ``xy_bounds``.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws the texture fields.
    anatomy : NeckAnatomy
    tumours : list of Tumour
        One per tumour side.
    table : TissueTable
        The patient's tissue parameters (tumour tissues are replaced per tumour).
    xy_bounds : ndarray, shape (2, 2)
        [[xmin, xmax], [ymin, ymax]] (mm) that every series' field of view lies in.
    margin_mm : float
        Static tissue kept around each gland region; at least half the largest voxel so
        that every voxel touching the gland is resampled from the 3-D region.

    Returns
    -------
    Phantom
    """
    table, t2_amp, conc_amp = _tumour_table(table, tumours)
    x = axis_coords(xy_bounds[0, 0], FINE_MM, int(np.ceil(np.ptp(xy_bounds[0]) / FINE_MM)) + 1)
    y = axis_coords(xy_bounds[1, 0], FINE_MM, int(np.ceil(np.ptp(xy_bounds[1]) / FINE_MM)) + 1)
    tissue2d = paint_static(anatomy, x, y)
    fields2d = _fields(rng, [x, y])
    maps2d = parameter_maps(tissue2d, table, fields2d, t2_amp, conc_amp)
    protected = np.isin(np.arange(_N), PROTECTED)
    bone_or_air = np.isin(np.arange(_N), (Tissue.AIR, Tissue.CORTEX, Tissue.MARROW))

    regions = []
    for side in ("right", "left"):
        b = region_bounds(anatomy, tumours, side, margin_mm)
        ix, iy = _index_range(x, *b[0]), _index_range(y, *b[1])
        z = axis_coords(b[2, 0], FINE_Z_MM, int(np.ceil(np.ptp(b[2]) / FINE_Z_MM)) + 1)
        xr, yr = x[ix], y[iy]
        fields = _fields(rng, [xr, yr, z])
        tissue = np.repeat(tissue2d[ix, iy][:, :, None], z.size, axis=2)
        gland = anatomy.glands[side].inside(xr[:, None, None], yr[None, :, None],
                                            z[None, None, :], fields["coarse"])
        side_tumours = [t for t in tumours if t.side == side]
        boxes = [_sub_box(t.bounds(), xr, yr, z) for t in side_tumours]
        for t, box in zip(side_tumours, boxes, strict=True):
            # the gland grows around a benign tumour; a malignant one may cross its border
            ax, ay, az = xr[box[0]], yr[box[1]], z[box[2]]
            rho, margin = tumour_radius(t, ax[:, None, None], ay[None, :, None],
                                        az[None, None, :], fields["mid"][box],
                                        fields["coarse"][box])
            gland[box] |= rho < margin + t.gland_margin_mm / float(np.mean(t.radii))
        tissue[gland & ~protected[tissue]] = Tissue.GLAND
        label_region = gland & ~bone_or_air[tissue]
        tumour = np.zeros(tissue.shape, dtype=bool)
        for t, box in zip(side_tumours, boxes, strict=True):
            ax, ay, az = xr[box[0]], yr[box[1]], z[box[2]]
            sub_fields = {name: f[box] for name, f in fields.items()}
            tumour[box] |= paint_tumour(t, ax[:, None, None], ay[None, :, None],
                                        az[None, None, :], sub_fields, tissue[box])
        dynamic = (tissue == Tissue.GLAND) | tumour
        maps = parameter_maps(tissue[dynamic], table,
                              {name: f[dynamic] for name, f in fields.items()},
                              t2_amp, conc_amp)
        regions.append(Region(side=side, ix=ix, iy=iy, z=z, dynamic=dynamic, maps=maps,
                              tumour=tumour, gland=label_region | tumour))
    return Phantom(x=x, y=y, maps2d=maps2d, regions=regions, table=table)
