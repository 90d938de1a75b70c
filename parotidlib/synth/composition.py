"""Who is in the synthetic cohort: histology, sex, age, tumour side and scanner per patient.

The composition follows Xia et al. 2021, Table 1 (233 patients: 63 Warthin, 90 pleomorphic
adenoma, 80 adenocarcinoma; 159 men, 74 women; age 52.4 (21-93) years; tumour left 101,
right 114, both 18) and Table 2 (scanners: 166 GE Signa HDxt, 34 Siemens Verio, 33 Siemens
Skyra). Counts for any cohort size come from the largest-remainder (Hamilton) method, so
that n = 233 reproduces the published counts exactly and other sizes keep the proportions.

Within the cohort, attributes are assigned as is clinically typical: Warthin tumours occur
mostly in older (smoking) men and account for most bilateral parotid tumours, pleomorphic
adenomas occur in younger patients with a slight female predominance.

A *shifted* cohort (another hospital, for external validation) replaces the scanner mix
and/or the case mix by weights (``scanners=``, ``histologies=``; :data:`EXTERNAL_SHIFT` is a
ready-made one). Sex, age and tumour-side rules are unchanged: the sex and side totals keep
Table 1's proportions and are apportioned within histologies as above.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from parotidlib.constants import HISTOLOGIES

__all__ = [
    "EXTERNAL_SHIFT",
    "FURTHER_HISTOLOGIES",
    "PAPER_COUNTS",
    "PatientSpec",
    "apportion",
    "check_mix",
    "cohort_composition",
    "draw_patients",
]

#: Published counts (Table 1 and Table 2, n = 233).
PAPER_COUNTS: dict[str, dict[str, int]] = {
    "histology": {"warthin": 63, "pleomorphic_adenoma": 90, "malignant": 80},
    "sex": {"M": 159, "F": 74},
    "tumor_side": {"left": 101, "right": 114, "both": 18},
    "scanner": {"GE Signa HDxt 1.5T": 166, "Siemens Verio 3T": 34, "Siemens Skyra 3T": 33},
}
PAPER_N = 233
#: Histologies beyond the paper's three, present only when a case mix (``histologies=``,
#: ``--histologies``) gives them a weight: a benign and a malignant one.
FURTHER_HISTOLOGIES: tuple[str, ...] = ("basal_cell_adenoma", "mucoepidermoid_carcinoma")
#: Published age range (years) and mean.
AGE_RANGE = (21, 93)

# Share of men per histology; the malignant share is set so the cohort total matches Table 1
# (63 * 0.87 + 90 * 0.55 + 80 * p = 159 -> p = 0.684).
_MALE_SHARE = {"warthin": 0.87, "pleomorphic_adenoma": 0.55, "malignant": 0.684,
               # basal cell adenoma: 6 of 22 men (Shi et al. 2012, AJNR 33:434); MEC: about
               # even (an assumption)
               "basal_cell_adenoma": 0.27, "mucoepidermoid_carcinoma": 0.45}
# How the 18 bilateral cases split between histologies (mostly Warthin).
_BILATERAL_WEIGHT = {"warthin": 0.80, "pleomorphic_adenoma": 0.13, "malignant": 0.07,
                     "basal_cell_adenoma": 0.02, "mucoepidermoid_carcinoma": 0.01}
# Age (years) per histology: mean and SD of a normal truncated to AGE_RANGE; the cohort mean
# comes out near the published 52.4.
_AGE = {"warthin": (62.0, 10.0), "pleomorphic_adenoma": (45.0, 14.0), "malignant": (53.5, 16.0),
        # basal cell adenoma 51.5 (SD 10.2) years (Shi et al. 2012); MEC: an assumption
        "basal_cell_adenoma": (51.5, 10.2), "mucoepidermoid_carcinoma": (48.0, 16.0)}

#: A ready-made "second hospital" for external validation (``generate_cohort(...,
#: **EXTERNAL_SHIFT)``, together with another seed). It shifts the acquisition and the case
#: mix: every patient is scanned on the Siemens Skyra 3T, the smallest group of Table 2
#: (33/233, 14 %), so its TR/TE ranges, pixel sizes, noise (SNR) and intensity scale, and the
#: 3 T tissue relaxation, dominate instead of the 1.5 T GE majority; and Warthin tumours are
#: the largest class (45 % instead of 27 %), with fewer pleomorphic adenomas (30 % instead of
#: 39 %) and malignant tumours (25 % instead of 34 %), as in a centre with many older smokers.
EXTERNAL_SHIFT: dict[str, dict[str, float]] = {
    "scanners": {"Siemens Skyra 3T": 1.0},
    "histologies": {"pleomorphic_adenoma": 0.3, "warthin": 0.45, "malignant": 0.25},
}


@dataclass(frozen=True)
class PatientSpec:
    """Cohort-level attributes of one synthetic patient.

    Attributes
    ----------
    index : int
        0-based position in the cohort (seeds the patient's own random stream).
    patient_id : str
        ``"SYN0001"`` for index 0.
    histology, tumor_side, sex, scanner : str
        As in the manifest.
    age : int
        Years.
    """

    index: int
    patient_id: str
    histology: str
    tumor_side: str
    sex: str
    age: int
    scanner: str


def apportion(n: int, weights: Sequence[float], caps: Sequence[int] | None = None
              ) -> np.ndarray:
    """Split ``n`` items into integer counts proportional to ``weights`` (largest remainder).

    Hamilton's method: every share gets the integer part of its quota ``n * w / sum(w)``; the
    items left over go to the largest fractional parts (ties to the earlier share). With
    ``caps`` no share exceeds its cap; the excess is apportioned again among the others.

    Parameters
    ----------
    n : int
        Items to split (>= 0).
    weights : sequence of float, length k
        Non-negative, at least one positive (unless ``n`` is 0).
    caps : sequence of int, length k, optional
        Upper bound per share; ``sum(caps) >= n`` is required.

    Returns
    -------
    ndarray of int, shape (k,)
        Counts summing to ``n``.

    Examples
    --------
    >>> apportion(233, [63, 90, 80]).tolist()
    [63, 90, 80]
    >>> apportion(3, [63, 90, 80]).tolist()
    [1, 1, 1]
    """
    w = np.asarray(weights, dtype=float)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if w.ndim != 1 or w.size == 0 or np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError(f"weights must be a non-empty 1-D sequence of finite values >= 0, "
                         f"got {list(weights)!r}")
    cap = np.full(w.size, n, dtype=int) if caps is None else np.asarray(caps, dtype=int)
    if cap.shape != w.shape or np.any(cap < 0):
        raise ValueError(f"caps must have one value >= 0 per weight, got {caps!r}")
    if n > int(np.sum(np.where(w > 0, cap, 0))) and n > 0:
        raise ValueError(f"cannot apportion n={n} within caps {cap.tolist()} for weights "
                         f"{w.tolist()} (shares with weight 0 get nothing)")
    counts = np.zeros(w.size, dtype=int)
    open_ = (w > 0) & (cap > 0)
    left = n
    while left > 0:
        quota = left * np.where(open_, w, 0.0) / np.sum(w[open_])
        add = np.floor(quota).astype(int)
        rest = left - int(add.sum())
        if rest:
            # stable sort: ties go to the earlier share
            order = np.argsort(-(quota - add), kind="stable")
            add[order[:rest]] += 1
        add = np.minimum(add, cap - counts)
        counts += add
        left = n - int(counts.sum())
        open_ &= counts < cap
    return counts


def check_mix(weights: Mapping[str, float], kind: str) -> dict[str, float]:
    """Validate a scanner or histology mix; return it as ``{name: float weight}``.

    Parameters
    ----------
    weights : mapping
        Name -> weight (finite, >= 0, at least one > 0). Names not given get weight 0.
    kind : {"scanners", "histologies"}
        Which names are valid: the keys of :data:`parotidlib.synth.scanners.SCANNERS`, or
        :data:`parotidlib.constants.HISTOLOGIES` and :data:`FURTHER_HISTOLOGIES`.

    Returns
    -------
    dict
        The given names in the canonical order (Table 2 / Table 1 order), weights as float.

    Raises
    ------
    ValueError
        Unknown names (the message lists the valid ones), bad weights or no positive weight.
    """
    valid = _valid_names(kind)
    if not isinstance(weights, Mapping):
        raise ValueError(f"{kind} must be a mapping name -> weight, got {weights!r}")
    unknown = [k for k in weights if k not in valid]
    if unknown:
        raise ValueError(f"unknown {kind} {unknown!r}; valid: {list(valid)!r}")
    out = {}
    for name in valid:
        if name in weights:
            w = weights[name]
            if isinstance(w, bool) or not isinstance(w, (int, float, np.integer, np.floating)) \
                    or not np.isfinite(w) or w < 0:
                raise ValueError(f"{kind} weight of {name!r} must be a finite number >= 0, "
                                 f"got {w!r}")
            out[name] = float(w)
    if not any(w > 0 for w in out.values()):
        raise ValueError(f"{kind} needs at least one positive weight, got {dict(weights)!r}")
    return out


def _valid_names(kind: str) -> tuple[str, ...]:
    if kind == "scanners":
        from parotidlib.synth.scanners import SCANNERS
        return tuple(SCANNERS)
    if kind == "histologies":
        return (*PAPER_COUNTS["histology"], *FURTHER_HISTOLOGIES)
    raise ValueError(f"kind must be 'scanners' or 'histologies', got {kind!r}")


def cohort_composition(n: int, *, scanners: Mapping[str, float] | None = None,
                       histologies: Mapping[str, float] | None = None
                       ) -> dict[str, dict[str, int]]:
    """Counts per histology, sex, tumour side and scanner for a cohort of ``n`` patients.

    Parameters
    ----------
    n : int
        Cohort size (>= 1); with ``n >= 3`` every histology is present (with
        ``histologies``: every histology of positive weight, when ``n`` allows).
    scanners : mapping, optional
        Scanner name (a key of :data:`~parotidlib.synth.scanners.SCANNERS`) -> weight; the
        scanner counts are apportioned from these weights (largest remainder). None: Table 2.
    histologies : mapping, optional
        Histology (``pleomorphic_adenoma``, ``warthin``, ``malignant``, or one of
        :data:`FURTHER_HISTOLOGIES`) -> weight; likewise. None: Table 1. A further histology
        is listed in the result only when the mix names it.

    Returns
    -------
    dict
        ``{"histology": {...}, "sex": {...}, "tumor_side": {...}, "scanner": {...}}``, each
        with every name (count 0 for names of weight 0); n = 233 with no mixes gives
        :data:`PAPER_COUNTS`.
    """
    if n < 1:
        raise ValueError(f"n_patients must be >= 1, got {n}")
    mixes = {"histology": None if histologies is None else check_mix(histologies, "histologies"),
             "scanner": None if scanners is None else check_mix(scanners, "scanners")}
    out = {}
    for key, paper in PAPER_COUNTS.items():
        names = list(paper) if key != "scanner" else list(_valid_names("scanners"))
        mix = mixes.get(key)
        if key == "histology" and mix is not None:
            names += [h for h in FURTHER_HISTOLOGIES if h in mix]
        if mix is None:
            names = list(paper)
            weights = [float(v) for v in paper.values()]
        else:
            weights = [mix.get(name, 0.0) for name in names]
        counts = apportion(n, weights)
        positive = np.asarray(weights) > 0
        if key == "histology" and n >= int(positive.sum()):
            # Guarantee every class (of positive weight) for tiny cohorts: take from the
            # largest share.
            while np.any(counts[positive] == 0):
                counts[np.argmax(counts)] -= 1
                counts[np.flatnonzero(positive)[np.argmin(counts[positive])]] += 1
        out[key] = dict(zip(names, (int(c) for c in counts), strict=True))
    return out


def _split_by_histology(total: int, hist_counts: dict[str, int], share: dict[str, float]
                        ) -> dict[str, int]:
    """Apportion ``total`` items among histologies by count x share, capped by the count."""
    names = list(hist_counts)
    weights = [hist_counts[h] * share[h] for h in names]
    caps = [hist_counts[h] for h in names]
    if sum(weights) == 0:
        weights = [float(c) for c in caps]
    counts = apportion(total, weights, caps)
    return dict(zip(names, (int(c) for c in counts), strict=True))


def _truncated_normal_age(rng: np.random.Generator, mean: float, sd: float) -> int:
    lo, hi = AGE_RANGE
    while True:
        age = rng.normal(mean, sd)
        if lo <= age <= hi + 0.49:
            return int(np.clip(round(age), lo, hi))


def draw_patients(n: int, seed: int, *, scanners: Mapping[str, float] | None = None,
                  histologies: Mapping[str, float] | None = None) -> list[PatientSpec]:
    """Draw the cohort-level attributes of ``n`` patients (Table 1 and Table 2 proportions).

    Marginal counts are exact (:func:`cohort_composition`). Sex and bilaterality are
    apportioned within histologies (Warthin: mostly men and most bilateral cases), left vs
    right among the one-sided cases proportionally to each histology's one-sided count; ages
    are drawn per histology; scanners are independent of everything else. Which patient gets
    which attributes is a seeded shuffle.

    Parameters
    ----------
    n : int
        Cohort size (>= 1).
    seed : int
        Cohort seed (>= 0).
    scanners, histologies : mapping, optional
        Shifted scanner or case mix (name -> weight; :func:`cohort_composition`). None (the
        default) keeps Table 2 / Table 1 and the exact draw of earlier versions.

    Returns
    -------
    list of PatientSpec
        Ordered by index (``SYN0001`` first).
    """
    comp = cohort_composition(n, scanners=scanners, histologies=histologies)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    hist = comp["histology"]
    males = _split_by_histology(comp["sex"]["M"], hist, _MALE_SHARE)
    both = _split_by_histology(comp["tumor_side"]["both"], hist, _BILATERAL_WEIGHT)
    one_sided = {h: hist[h] - both[h] for h in hist}
    left = _split_by_histology(comp["tumor_side"]["left"], one_sided, dict.fromkeys(hist, 1.0))

    rows = []
    for h in (*HISTOLOGIES, *(h for h in hist if h not in HISTOLOGIES)):
        sides = (["both"] * both[h] + ["left"] * left[h]
                 + ["right"] * (one_sided[h] - left[h]))
        sexes = ["M"] * males[h] + ["F"] * (hist[h] - males[h])
        # sex and side independent within a histology
        sexes = [sexes[i] for i in rng.permutation(len(sexes))]
        for side, sex in zip(sides, sexes, strict=True):
            mean, sd = _AGE[h]
            # Warthin patients who are women are a little younger on average.
            age = _truncated_normal_age(rng, mean - (3.0 if sex == "F" else 0.0), sd)
            rows.append((h, side, sex, age))
    scanners = [name for name, c in comp["scanner"].items() for _ in range(c)]
    scanners = [scanners[i] for i in rng.permutation(n)]
    order = rng.permutation(n)
    return [
        PatientSpec(index=i, patient_id=f"SYN{i + 1:04d}", histology=rows[order[i]][0],
                    tumor_side=rows[order[i]][1], sex=rows[order[i]][2], age=rows[order[i]][3],
                    scanner=scanners[i])
        for i in range(n)
    ]
