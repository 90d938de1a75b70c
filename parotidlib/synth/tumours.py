"""Parotid tumours: size, position in the gland, shape and internal structure per histology.

Class-typical MR appearance (Ikeda et al. 2004, AJNR 25:1256; Yabuuchi et al. 2003, Radiology
226:345; Christe et al. 2011, AJNR 32:1202), each drawn from distributions that overlap
between classes:

* pleomorphic adenoma: lobulated ("bosselated") margin, thin fibrous capsule (dark rim on
  T2), myxoid stroma with very long T2 and islands of cellular tissue (the cellular variant
  has little stroma and a lower T2), progressive (delayed) enhancement;
* Warthin tumour: smooth oval, lower pole (tail) of the gland, intermediate T2 solid part,
  small cysts (serous: long T1/T2; proteinaceous: short T1), mild enhancement (early
  wash-out, so little at the delayed CE-T1), often bilateral;
* malignant (adenocarcinoma): irregular, infiltrative margin (smooth in low-grade tumours),
  intermediate-short T2, central necrosis (long T2, no enhancement) in high-grade and large
  tumours, heterogeneous enhancement; no capsule; may cross the gland's border.

Two further histologies exist only when a cohort's case mix names them (``--histologies``):

* basal cell adenoma: small, smooth, fully encapsulated, often partly or mostly cystic,
  intermediate T2, strong enhancement (Shi et al. 2012, AJNR 33:434; Eur J Radiol
  2021;144:109980);
* mucoepidermoid carcinoma: mostly low grade (circumscribed, mucin cysts, brighter on T2),
  otherwise as the high-grade carcinoma above.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy.special import ndtri

from parotidlib.synth.anatomy import SIDE_SIGN, GlandShape
from parotidlib.synth.tissues import TISSUE_RANGES, Tissue, TissueRange

__all__ = ["Tumour", "draw_tumour", "paint_tumour"]

#: Median diameter (mm) per histology; log-normal spread, clipped to 12-40 mm. Basal cell
#: adenomas are small (< 30 mm; Shi et al. 2012, AJNR 33:434).
_DIAMETER_MM = {"pleomorphic_adenoma": 25.0, "warthin": 27.0, "malignant": 28.0,
                "basal_cell_adenoma": 20.0, "mucoepidermoid_carcinoma": 26.0}
#: Tissues a tumour does not replace (it pushes or erodes bone only in late stages).
_BONE = (Tissue.AIR, Tissue.CORTEX, Tissue.MARROW)
# Phenotype variants: the ranges of tissues.TISSUE_RANGES (classic pleomorphic adenoma,
# high-grade carcinoma) with single ranges replaced, so that every range has one source.
#: Cellular pleomorphic adenoma: less myxoid stroma, so a lower stroma T2.
_PA_STROMA_CELLULAR_VARIANT = replace(TISSUE_RANGES[Tissue.PA_STROMA], t2_ms=(95, 160))
#: Low-grade carcinoma (e.g. mucoepidermoid): brighter on T2, less enhancement.
_MALIGNANT_LOW_GRADE = replace(TISSUE_RANGES[Tissue.MALIGNANT], t2_ms=(60, 130),
                               conc_mM=(0.12, 0.35))
#: Low-grade mucoepidermoid carcinoma: the same replacement on its own row.
_MEC_LOW_GRADE = replace(TISSUE_RANGES[Tissue.MEC_SOLID], t2_ms=_MALIGNANT_LOW_GRADE.t2_ms,
                         conc_mM=_MALIGNANT_LOW_GRADE.conc_mM)


@dataclass(frozen=True)
class Tumour:
    """One tumour (mm, patient coordinates).

    Attributes
    ----------
    histology, side : str
    centre : ndarray (3,)
    radii : ndarray (3,)
        Semi-axes before rotation (x, y in-plane; z).
    angle_deg : float
        In-plane rotation.
    lobes : ndarray (K, 5)
        Lobulation bumps: unit direction (3), amplitude (fraction of the radius), cosine of
        the half-width.
    margin_irregularity : float
        Amplitude of the random-field perturbation of the margin (infiltrative look).
    capsule_mm : float
        Fibrous capsule thickness (0: none).
    cellular_fraction : float
        Pleomorphic adenoma: share of cellular islands in the stroma.
    cysts : ndarray (K, 5)
        Centre (3, mm), radius (mm), 1 for proteinaceous content (short T1) else 0.
    necrosis_fraction : float
        Necrotic core radius as a fraction of the tumour radius (0: none).
    gland_margin_mm : float
        Gland tissue kept around the tumour (the gland is grown to hold it); negative for
        malignant tumours, whose outer part may lie outside the gland.
    tissue_values : dict
        Per-tumour parameters that replace the patient's table: {Tissue: (pd, t1, t2, conc)},
        drawn from :data:`parotidlib.synth.tissues.TISSUE_RANGES` (or a phenotype variant).
    heterogeneity : dict
        Texture modulation amplitudes per tumour tissue: {Tissue: (t2_amp, conc_amp)}.
    phenotype : str
        The variant drawn: ``"classic"`` or ``"cellular"`` (pleomorphic adenoma),
        ``"high_grade"`` or ``"low_grade"`` (carcinomas), ``""`` otherwise. Recorded (not
        drawn again) for the diffusion values of :mod:`parotidlib.synth.diffusion`.
    """

    histology: str
    side: str
    centre: np.ndarray
    radii: np.ndarray
    angle_deg: float
    lobes: np.ndarray
    margin_irregularity: float
    capsule_mm: float
    cellular_fraction: float
    cysts: np.ndarray
    necrosis_fraction: float
    gland_margin_mm: float
    tissue_values: dict = field(default_factory=dict)
    heterogeneity: dict = field(default_factory=dict)
    phenotype: str = ""

    @property
    def inplane_radius_mm(self) -> float:
        """Typical largest in-plane radius (mm), with lobulation and irregularity."""
        lobe = float(self.lobes[:, 3].max()) if len(self.lobes) else 0.0
        return float(self.radii[:2].max() * (1.0 + lobe + self.margin_irregularity))

    @property
    def diameter_mm(self) -> float:
        """Largest diameter (mm), ignoring lobulation."""
        return float(2.0 * self.radii.max())

    @property
    def lobe_bound(self) -> float:
        """Largest lobulation added to the normalised radius (the two largest lobes)."""
        return float(np.sort(self.lobes[:, 3])[::-1][:2].sum()) if len(self.lobes) else 0.0

    def bounds(self, margin_mm: float = 0.0) -> np.ndarray:
        """[[xmin, xmax], [ymin, ymax], [zmin, zmax]] (mm) that contain the tumour."""
        grow = 1.0 + self.lobe_bound + 2.0 * self.margin_irregularity
        r = np.array([self.radii[:2].max(), self.radii[:2].max(), self.radii[2]]) * grow
        r = r + max(self.gland_margin_mm, 0.0) + margin_mm
        return np.stack([self.centre - r, self.centre + r], axis=1)


def _unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _lobes(rng: np.random.Generator, n: int, amp: tuple[float, float]) -> np.ndarray:
    if n == 0:
        return np.zeros((0, 5))
    return np.column_stack([_unit_vectors(rng, n), rng.uniform(*amp, size=n),
                            np.cos(np.deg2rad(rng.uniform(35.0, 65.0, size=n)))])


def _cysts(rng: np.random.Generator, n: int, radii: np.ndarray, r_mm: tuple[float, float],
           p_protein: float, max_rel: float = 0.75) -> np.ndarray:
    if n == 0:
        return np.zeros((0, 5))
    pos = _unit_vectors(rng, n) * (rng.uniform(0.0, 1.0, size=(n, 1)) ** (1 / 3) * max_rel)
    return np.column_stack([pos * radii, rng.uniform(*r_mm, size=n),
                            (rng.random(n) < p_protein).astype(float)])


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _draw_values(rng: np.random.Generator, r: TissueRange) -> tuple[float, float, float, float]:
    """One tumour's (pd, T1 ms, T2 ms, contrast mM) of a tissue, uniform in the ranges of ``r``.

    Drawn in this order, one uniform each (the order fixes the random stream, and so the
    cohort); the fat fraction of tumour tissues is 0 and is not drawn.
    """
    return (_u(rng, *r.pd), _u(rng, *r.t1_ms), _u(rng, *r.t2_ms), _u(rng, *r.conc_mM))


def _carcinoma(rng: np.random.Generator, d: float, radii: np.ndarray, tissue: Tissue,
               low_grade: TissueRange, *, p_high: float, p_necrosis_low: float,
               p_cysts: tuple[float, float], cyst_shape: tuple[float, tuple[float, float], float]
               ) -> tuple:
    """Grade, margin, lobes, necrosis, cysts, values and texture of a carcinoma.

    High grade (probability ``p_high``): irregular margin, necrosis more likely in large
    tumours; low grade: smooth, the ``low_grade`` ranges (brighter on T2, less enhancement).
    ``p_cysts`` is the chance of cysts (high grade, low grade); ``cyst_shape`` their Poisson
    mean count (plus one), radius range (mm) and proteinaceous share. A chance of 0 draws
    nothing, so the malignant class's random stream is that of earlier versions.

    Returns
    -------
    tuple
        ``(phenotype, irregularity, lobes, necrosis_fraction, cysts, values, heterogeneity,
        gland_margin_mm)``.
    """
    high_grade = rng.random() < p_high
    irregular = _u(rng, 0.12, 0.3) if high_grade else _u(rng, 0.0, 0.08)
    lobes = _lobes(rng, int(rng.integers(0, 4)), (0.05, 0.15))
    necrosis = 0.0
    if rng.random() < ((0.3 + 0.4 * (d - 12.0) / 28.0) if high_grade else p_necrosis_low):
        necrosis = _u(rng, 0.25, 0.55)
    cysts = np.zeros((0, 5))
    p = p_cysts[0] if high_grade else p_cysts[1]
    if p > 0 and rng.random() < p:
        mean_count, r_mm, p_protein = cyst_shape
        cysts = _cysts(rng, int(rng.poisson(mean_count)) + 1, radii, r_mm, p_protein)
    values = {tissue: _draw_values(rng, TISSUE_RANGES[tissue] if high_grade else low_grade)}
    het = {tissue: (0.12, _u(rng, 0.3, 0.55) if high_grade else _u(rng, 0.15, 0.35))}
    return ("high_grade" if high_grade else "low_grade", irregular, lobes, necrosis, cysts,
            values, het, -_u(rng, 0.0, 4.0))


def draw_tumour(rng: np.random.Generator, histology: str, gland: GlandShape) -> Tumour:
    """Draw one tumour of ``histology`` inside ``gland``.

    Parameters
    ----------
    rng : numpy.random.Generator
    histology : str
        ``"pleomorphic_adenoma"``, ``"warthin"``, ``"malignant"``, or one of the further
        histologies ``"basal_cell_adenoma"``, ``"mucoepidermoid_carcinoma"``.
    gland : GlandShape
        The gland it grows in (Warthin tumours favour its lower pole).

    Returns
    -------
    Tumour
        Cyst centres are stored relative to the tumour centre (mm).
    """
    if histology not in _DIAMETER_MM:
        raise ValueError(f"histology must be one of {sorted(_DIAMETER_MM)}, got {histology!r}")
    d = float(np.clip(_DIAMETER_MM[histology] * np.exp(rng.normal(0.0, 0.28)), 12.0, 40.0))
    radii = np.array([d / 2 * _u(rng, 0.85, 1.15), d / 2 * _u(rng, 0.85, 1.15),
                      min(d / 2 * _u(rng, 0.75, 1.1), 16.0)])
    sgn = SIDE_SIGN[gland.side]
    xc, yc, zc = gland.centre
    if histology == "warthin":  # lower pole / tail
        dz = -_u(rng, 0.35, 0.75) * gland.h_down
    else:
        dz = _u(rng, -0.45, 0.45) * (gland.h_up if rng.random() < 0.5 else gland.h_down)
    below = min(dz, 0.0)
    centre = np.array([
        xc - sgn * gland.tail_slope[0] * below + sgn * _u(rng, -0.15, 0.35) * gland.rx,
        yc + gland.tail_slope[1] * below + _u(rng, -0.35, 0.3) * gland.ry,
        zc + dz,
    ])
    values: dict[Tissue, tuple[float, float, float, float]] = {}
    het: dict[Tissue, tuple[float, float]] = {}
    lobes = _lobes(rng, 0, (0, 0))
    cysts = np.zeros((0, 5))
    irregular, capsule, cellular, necrosis, gland_margin = 0.0, 0.0, 0.0, 0.0, 0.0
    phenotype = ""

    if histology == "pleomorphic_adenoma":
        classic = rng.random() < 0.6  # else the cellular variant: less stroma, lower T2
        phenotype = "classic" if classic else "cellular"
        cellular = _u(rng, 0.05, 0.35) if classic else _u(rng, 0.4, 0.8)
        values[Tissue.PA_STROMA] = _draw_values(
            rng, TISSUE_RANGES[Tissue.PA_STROMA] if classic else _PA_STROMA_CELLULAR_VARIANT)
        values[Tissue.PA_CELLULAR] = _draw_values(rng, TISSUE_RANGES[Tissue.PA_CELLULAR])
        het = {Tissue.PA_STROMA: (0.12, 0.3), Tissue.PA_CELLULAR: (0.08, 0.3)}
        lobes = (_lobes(rng, int(rng.integers(3, 8)), (0.08, 0.25)) if rng.random() < 0.7
                 else _lobes(rng, 2, (0.0, 0.08)))
        capsule = _u(rng, 0.6, 1.3) if rng.random() < 0.85 else 0.0
        if rng.random() < 0.15:
            cysts = _cysts(rng, int(rng.integers(1, 3)), radii, (1.0, 2.5), 0.0)
        gland_margin = _u(rng, 2.0, 4.0)
    elif histology == "warthin":
        values[Tissue.WARTHIN_SOLID] = _draw_values(rng, TISSUE_RANGES[Tissue.WARTHIN_SOLID])
        het = {Tissue.WARTHIN_SOLID: (0.1, 0.3)}
        lobes = _lobes(rng, 2, (0.0, 0.1))
        capsule = _u(rng, 0.5, 1.0) if rng.random() < 0.7 else 0.0
        kind = rng.random()
        if kind < 0.2:  # solid Warthin: no cysts, no foci
            pass
        else:
            p_protein = _u(rng, 0.2, 0.6)
            cysts = _cysts(rng, int(rng.poisson(3.0)) + 1, radii, (1.0, 3.5), p_protein)
            foci = _cysts(rng, int(rng.poisson(1.5)), radii, (0.8, 2.0), 1.0)
            cysts = np.vstack([cysts, foci])
            if kind > 0.8:  # predominantly cystic
                big = _cysts(rng, 1, radii, (1.0, 1.0), p_protein * 0.5, max_rel=0.3)
                big[0, 3] = radii.mean() * _u(rng, 0.35, 0.55)
                cysts = np.vstack([cysts, big])
        gland_margin = _u(rng, 1.5, 3.5)
    elif histology == "basal_cell_adenoma":
        # smooth margin, complete capsule, cystic parts in most (11 of 13, 5 cyst-dominant;
        # Eur J Radiol 2021;144:109980); the shares below follow these counts
        values[Tissue.BCA_SOLID] = _draw_values(rng, TISSUE_RANGES[Tissue.BCA_SOLID])
        het = {Tissue.BCA_SOLID: (0.08, 0.3)}
        lobes = _lobes(rng, 2, (0.0, 0.08))
        capsule = _u(rng, 0.5, 1.0)
        if rng.random() < 0.85:
            cysts = _cysts(rng, int(rng.poisson(2.0)) + 1, radii, (1.0, 3.0), 0.2)
            if rng.random() < 0.45:  # cyst-dominant
                big = _cysts(rng, 1, radii, (1.0, 1.0), 0.0, max_rel=0.3)
                big[0, 3] = radii.mean() * _u(rng, 0.45, 0.65)
                cysts = np.vstack([cysts, big])
        gland_margin = _u(rng, 2.0, 4.0)
    elif histology == "mucoepidermoid_carcinoma":
        # mostly low grade: circumscribed, cystic (mucin), brighter on T2; high grade as the
        # carcinoma below (Habermann et al. 2009, AJNR 30:591: ADC like Warthin tumours)
        phenotype, irregular, lobes, necrosis, cysts, values, het, gland_margin = _carcinoma(
            rng, d, radii, Tissue.MEC_SOLID, _MEC_LOW_GRADE, p_high=0.35,
            p_necrosis_low=0.0, p_cysts=(0.2, 0.7), cyst_shape=(2.5, (1.0, 3.5), 0.5))
    else:
        # low-grade carcinomas (e.g. mucoepidermoid) are often well circumscribed, partly
        # cystic and brighter on T2: they resemble benign tumours
        phenotype, irregular, lobes, necrosis, cysts, values, het, gland_margin = _carcinoma(
            rng, d, radii, Tissue.MALIGNANT, _MALIGNANT_LOW_GRADE, p_high=0.55,
            p_necrosis_low=0.1, p_cysts=(0.0, 0.25), cyst_shape=(2.0, (1.0, 3.0), 0.3))
    return Tumour(histology=histology, side=gland.side, centre=centre, radii=radii,
                  angle_deg=_u(rng, -40.0, 40.0), lobes=lobes, margin_irregularity=irregular,
                  capsule_mm=capsule, cellular_fraction=cellular, cysts=cysts,
                  necrosis_fraction=necrosis, gland_margin_mm=gland_margin,
                  tissue_values=values, heterogeneity=het, phenotype=phenotype)


def tumour_radius(t: Tumour, x: np.ndarray, y: np.ndarray, z: np.ndarray,
                  field_mid: np.ndarray, field_coarse: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Normalised radius ``rho`` and the margin ``R`` on a grid; the tumour is ``rho < R``.

    ``x`` (n,1,1), ``y`` (1,m,1), ``z`` (1,1,k) in mm; the fields are (n, m, k).
    """
    a = np.deg2rad(t.angle_deg)
    dx, dy, dz = x - t.centre[0], y - t.centre[1], z - t.centre[2]
    u = (dx * np.cos(a) + dy * np.sin(a)) / t.radii[0]
    v = (-dx * np.sin(a) + dy * np.cos(a)) / t.radii[1]
    w = dz / t.radii[2]
    rho = np.sqrt(u * u + v * v + w * w) + 1e-6
    margin = np.zeros(np.broadcast_shapes(u.shape, v.shape, w.shape), dtype=np.float32)
    for dxn, dyn, dzn, amp, cos_w in t.lobes:
        cos_ang = (u * dxn + v * dyn + w * dzn) / rho
        margin += amp * np.clip((cos_ang - cos_w) / (1.0 - cos_w), 0.0, 1.0) ** 2
    np.minimum(margin, t.lobe_bound, out=margin)  # keeps the tumour inside bounds()
    margin += 1.0
    if t.margin_irregularity > 0:
        # coarse bosses plus finer spicules: an irregular, infiltrative margin
        margin += t.margin_irregularity * np.clip(field_coarse + 0.4 * field_mid, -2.0, 2.0)
    return rho, margin


def paint_tumour(t: Tumour, x: np.ndarray, y: np.ndarray, z: np.ndarray,
                 fields: dict[str, np.ndarray], tissue: np.ndarray) -> np.ndarray:
    """Paint ``t``'s tissues into ``tissue`` (in place) and return its mask.

    Parameters
    ----------
    t : Tumour
    x, y, z : ndarray
        Grid axes (mm) broadcast as (n,1,1), (1,m,1), (1,1,k).
    fields : dict
        Unit-variance random fields ``"mid"``, ``"coarse"`` of shape (n, m, k).
    tissue : ndarray of uint8, shape (n, m, k)
        Tissue map, modified where the tumour lies (bone and air are kept).

    Returns
    -------
    ndarray of bool, shape (n, m, k)
    """
    rho, margin = tumour_radius(t, x, y, z, fields["mid"], fields["coarse"])
    inside = rho < margin
    rel = rho / margin
    sub = np.full(inside.shape, Tissue.MALIGNANT, dtype=np.uint8)
    if t.histology == "pleomorphic_adenoma":
        # islands where the field exceeds its (1 - fraction) quantile of a unit normal
        threshold = float(ndtri(1.0 - np.clip(t.cellular_fraction, 1e-6, 1 - 1e-6)))
        sub[:] = Tissue.PA_STROMA
        sub[fields["mid"] > threshold] = Tissue.PA_CELLULAR
    elif t.histology == "warthin":
        sub[:] = Tissue.WARTHIN_SOLID
    elif t.histology == "basal_cell_adenoma":
        sub[:] = Tissue.BCA_SOLID
    elif t.histology == "mucoepidermoid_carcinoma":
        sub[:] = Tissue.MEC_SOLID
    for cx, cy, cz, r, protein in t.cysts:
        d2 = ((x - t.centre[0] - cx) ** 2 + (y - t.centre[1] - cy) ** 2
              + (z - t.centre[2] - cz) ** 2)
        sub[np.broadcast_to(d2 < r * r, sub.shape)] = Tissue.PROTEIN if protein else Tissue.CYST
    if t.necrosis_fraction > 0:
        core = rel < t.necrosis_fraction * (1.0 + 0.35 * np.clip(fields["coarse"], -2.5, 2.5))
        sub[core] = Tissue.NECROSIS
    if t.capsule_mm > 0:
        sub[rel > 1.0 - t.capsule_mm / float(np.mean(t.radii))] = Tissue.CAPSULE
    keep = np.isin(tissue, _BONE)
    mask = inside & ~keep
    tissue[mask] = sub[mask]
    return mask
