"""Tissue classes and their MR parameters (proton density, T1, T2, fat fraction, contrast uptake).

Values are literature ranges at 1.5 T (docs/synthetic-cohort.md, "Tissues"; Bottomley et al.
1984, Med Phys 11:425; de Bazelaire et al. 2004, Radiology 230:652 for 3 T; Stark & Bradley,
*Magnetic Resonance Imaging*; for the parotid tumours Ikeda et al. 2004, AJNR 25:1256 and
Yabuuchi et al. 2003, Radiology 226:345). Each patient draws its own value inside every range
(per-patient spread). The rows of the four histology tissues (PA_STROMA, PA_CELLULAR,
WARTHIN_SOLID, MALIGNANT) are the one source of their ranges: :mod:`parotidlib.synth.tumours`
draws each tumour's own values from them (a phenotype may replace one range, e.g. the cellular
pleomorphic adenoma's stroma T2), and those replace the patient's draw for that tumour. The
two tissues of the further histologies (:data:`TUMOUR_ONLY`: basal cell adenoma,
mucoepidermoid carcinoma) have rows too, but only their tumours draw them.

Two-compartment tissues (parotid parenchyma, bone marrow) mix a water compartment with fat:
the voxel signal is ``(1 - ff) * S_water + ff * S_fat``, so a fatty gland lies between fat
and muscle on T1 and is darkened by fat saturation on CE-T1, as in real images.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

__all__ = ["TISSUE_RANGES", "Tissue", "TissueTable", "draw_tissue_table"]


class Tissue(IntEnum):
    """Tissue classes of the phantom (values index :class:`TissueTable` arrays)."""

    AIR = 0
    FAT = 1
    MUSCLE = 2
    GLAND = 3          # parotid parenchyma (water compartment + fat fraction)
    MARROW = 4         # mandibular / vertebral marrow (mostly fat)
    CORTEX = 5         # cortical bone: no MR signal
    FLUID = 6          # cerebrospinal fluid
    CORD = 7           # spinal cord
    VESSEL = 8         # flowing blood: void on spin echo, bright on post-contrast GRE
    MUCOSA = 9         # pharyngeal mucosa (enhancing)
    CAPSULE = 10       # fibrous tumour capsule (dark on T2)
    PA_STROMA = 11     # pleomorphic adenoma, myxoid / chondroid stroma
    PA_CELLULAR = 12   # pleomorphic adenoma, epithelial / myoepithelial islands
    WARTHIN_SOLID = 13  # Warthin tumour, lymphoid stroma + oncocytic epithelium
    CYST = 14          # serous cyst fluid
    PROTEIN = 15       # proteinaceous / haemorrhagic cyst content: short T1
    MALIGNANT = 16     # carcinoma, viable solid part
    NECROSIS = 17      # necrotic core
    BCA_SOLID = 18     # basal cell adenoma, solid part (only with --histologies)
    MEC_SOLID = 19     # mucoepidermoid carcinoma, solid part (only with --histologies)


#: Tissues a parotid gland may not replace (bone, air, vessels, spinal canal).
PROTECTED: tuple[Tissue, ...] = (Tissue.AIR, Tissue.CORTEX, Tissue.MARROW, Tissue.VESSEL,
                                 Tissue.FLUID, Tissue.CORD)
#: Tumour tissues (label 3).
TUMOUR_TISSUES: tuple[Tissue, ...] = (Tissue.CAPSULE, Tissue.PA_STROMA, Tissue.PA_CELLULAR,
                                      Tissue.WARTHIN_SOLID, Tissue.CYST, Tissue.PROTEIN,
                                      Tissue.MALIGNANT, Tissue.NECROSIS, Tissue.BCA_SOLID,
                                      Tissue.MEC_SOLID)
#: Tissues of the further histologies (``--histologies``): only a tumour of that histology
#: sets them, so the patient's own table does not draw them (its random stream, and with it
#: every cohort without these histologies, stays as it was).
TUMOUR_ONLY: tuple[Tissue, ...] = (Tissue.BCA_SOLID, Tissue.MEC_SOLID)


@dataclass(frozen=True)
class TissueRange:
    """Per-patient ranges (uniform) of one tissue's parameters at 1.5 T.

    pd: relative proton density (water = 1); t1_ms, t2_ms: relaxation times of the water
    compartment (ms); fat_fraction: fat share of the voxel signal (0-1); conc_mM: contrast
    agent concentration in the tissue at the CE-T1 acquisition (mM).
    """

    pd: tuple[float, float]
    t1_ms: tuple[float, float]
    t2_ms: tuple[float, float]
    fat_fraction: tuple[float, float] = (0.0, 0.0)
    conc_mM: tuple[float, float] = (0.0, 0.0)


#: Literature-based ranges (1.5 T). tumours.py draws every tumour's PA_STROMA, PA_CELLULAR,
#: WARTHIN_SOLID and MALIGNANT values from these rows (classic pleomorphic adenoma, high-grade
#: carcinoma; a variant phenotype replaces single ranges there). The patient's own draw of
#: these four rows is overwritten by its tumour's; it is still made so that the random stream,
#: and with it every cohort, stays as it was.
TISSUE_RANGES: dict[Tissue, TissueRange] = {
    Tissue.AIR: TissueRange((0.0, 0.0), (1000, 1000), (1, 1)),
    # fat: the water-compartment values are unused (fat_fraction 1); its own T1/T2 are FAT_*.
    Tissue.FAT: TissueRange((0.9, 1.0), (250, 350), (70, 90), (1.0, 1.0)),
    Tissue.MUSCLE: TissueRange((0.70, 0.80), (850, 1000), (40, 50), (0.0, 0.04), (0.04, 0.08)),
    Tissue.GLAND: TissueRange((0.78, 0.88), (850, 1050), (55, 80), (0.2, 0.6), (0.06, 0.12)),
    Tissue.MARROW: TissueRange((0.80, 0.90), (700, 900), (40, 60), (0.6, 0.8), (0.02, 0.05)),
    Tissue.CORTEX: TissueRange((0.04, 0.06), (1000, 1200), (0.8, 1.2)),
    Tissue.FLUID: TissueRange((0.98, 1.0), (3000, 4000), (1500, 2000)),
    Tissue.CORD: TissueRange((0.70, 0.78), (750, 900), (70, 90)),
    Tissue.VESSEL: TissueRange((0.85, 0.90), (1300, 1500), (180, 250), (0.0, 0.0), (0.8, 1.2)),
    Tissue.MUCOSA: TissueRange((0.80, 0.90), (900, 1100), (80, 110), (0.0, 0.0), (0.2, 0.3)),
    Tissue.CAPSULE: TissueRange((0.55, 0.65), (900, 1100), (40, 55), (0.0, 0.0), (0.04, 0.1)),
    Tissue.PA_STROMA: TissueRange((0.9, 1.0), (1100, 1500), (120, 250), (0.0, 0.0),
                                  (0.12, 0.35)),
    Tissue.PA_CELLULAR: TissueRange((0.8, 0.9), (900, 1200), (75, 115), (0.0, 0.0),
                                    (0.15, 0.30)),
    Tissue.WARTHIN_SOLID: TissueRange((0.8, 0.9), (800, 1200), (70, 125), (0.0, 0.0),
                                      (0.05, 0.18)),
    Tissue.CYST: TissueRange((0.95, 1.0), (2500, 4000), (500, 2000)),
    Tissue.PROTEIN: TissueRange((0.8, 0.9), (300, 600), (60, 150)),
    Tissue.MALIGNANT: TissueRange((0.8, 0.9), (900, 1300), (60, 100), (0.0, 0.0),
                                  (0.15, 0.45)),
    Tissue.NECROSIS: TissueRange((0.9, 1.0), (1500, 2500), (200, 500), (0.0, 0.0),
                                 (0.0, 0.02)),
    # Basal cell adenoma: solid part hypointense to the (fatty) parotid on T2, strong early
    # enhancement with a plateau ("Findings of parotid basal cell adenoma on magnetic
    # resonance imaging", Oral Radiol 2016, doi:10.1007/s11282-015-0209-5; Shi et al. 2012,
    # AJNR 33:434; Eur J Radiol 2021;144:109980, PMID 34601323): an intermediate T2 and the
    # enhancement of the strongly enhancing tumour rows above (our reading of these
    # qualitative findings, not measured values).
    Tissue.BCA_SOLID: TissueRange((0.8, 0.9), (900, 1200), (75, 105), (0.0, 0.0),
                                  (0.2, 0.4)),
    # Mucoepidermoid carcinoma (high grade; tumours.py replaces T2 and contrast for low
    # grade, as for MALIGNANT): the malignant row.
    Tissue.MEC_SOLID: TissueRange((0.8, 0.9), (900, 1300), (60, 100), (0.0, 0.0),
                                  (0.15, 0.45)),
}
#: Fat itself (1.5 T): T1 and apparent fast-spin-echo T2 (ms); per-patient spread.
FAT_T1_MS = (250.0, 350.0)
FAT_T2_MS = (70.0, 90.0)


@dataclass(frozen=True)
class TissueTable:
    """One patient's tissue parameters, arrays indexed by :class:`Tissue` value.

    Attributes
    ----------
    pd, t1_ms, t2_ms, fat_fraction, conc_mM : ndarray of float32, shape (n_tissues,)
        Water-compartment parameters (see :class:`TissueRange`).
    fat_pd, fat_t1_ms, fat_t2_ms : float
        The fat compartment shared by all tissues.
    field_strength_t : float
        1.5 or 3.0; the values are already converted to this field.
    """

    pd: np.ndarray
    t1_ms: np.ndarray
    t2_ms: np.ndarray
    fat_fraction: np.ndarray
    conc_mM: np.ndarray
    fat_pd: float
    fat_t1_ms: float
    fat_t2_ms: float
    field_strength_t: float


def field_factors(field_strength_t: float) -> tuple[float, float]:
    """Multipliers (T1, T2) from 1.5 T to ``field_strength_t`` for soft tissue.

    At 3 T soft-tissue T1 is about 20-40 % longer and T2 about 10 % shorter than at 1.5 T
    (de Bazelaire et al. 2004; Stanisz et al. 2005, MRM 54:507).
    """
    if field_strength_t not in (1.5, 3.0):
        raise ValueError(f"field_strength_t must be 1.5 or 3.0, got {field_strength_t!r}")
    return (1.0, 1.0) if field_strength_t == 1.5 else (1.3, 0.9)


def draw_range(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    """One uniform draw in ``bounds`` (a degenerate range returns its value)."""
    lo, hi = bounds
    return float(lo) if hi <= lo else float(rng.uniform(lo, hi))


def draw_tissue_table(rng: np.random.Generator, field_strength_t: float, age: int
                      ) -> TissueTable:
    """Draw one patient's tissue parameters (uniform in :data:`TISSUE_RANGES`).

    The parotid fat fraction grows with age (fatty involution of the gland, as measured with
    Dixon fat-fraction MRI), about 0.2 at 20 years to 0.55 at 90 years, with spread.

    Parameters
    ----------
    rng : numpy.random.Generator
    field_strength_t : float
        1.5 or 3.0 (T1 lengthened, T2 shortened at 3 T, fat T1 only slightly).
    age : int
        Years.

    Returns
    -------
    TissueTable
    """
    k1, k2 = field_factors(field_strength_t)
    n = len(Tissue)
    pd, t1, t2, ff, conc = (np.zeros(n, np.float32) for _ in range(5))
    for tissue, r in TISSUE_RANGES.items():
        if tissue in TUMOUR_ONLY:
            continue  # set by the tumour only (see TUMOUR_ONLY)
        pd[tissue] = draw_range(rng, r.pd)
        t1[tissue] = draw_range(rng, r.t1_ms) * k1
        t2[tissue] = draw_range(rng, r.t2_ms) * k2
        ff[tissue] = draw_range(rng, r.fat_fraction)
        conc[tissue] = draw_range(rng, r.conc_mM)
    ff[Tissue.GLAND] = np.clip(0.12 + 0.0048 * age + rng.normal(0.0, 0.06), 0.1, 0.7)
    fat_k1 = 1.0 if field_strength_t == 1.5 else 1.1
    return TissueTable(
        pd=pd, t1_ms=t1, t2_ms=t2, fat_fraction=ff, conc_mM=conc,
        fat_pd=draw_range(rng, TISSUE_RANGES[Tissue.FAT].pd),
        fat_t1_ms=draw_range(rng, FAT_T1_MS) * fat_k1,
        fat_t2_ms=draw_range(rng, FAT_T2_MS) * k2,
        field_strength_t=float(field_strength_t),
    )
