"""Diffusion: the ADC of every tissue, the EPI protocol and the DWI and ADC images.

A single-shot spin-echo EPI acquires the same anatomy as the other series, at b = 0 and
b = :data:`B_VALUE` s/mm², on its own coarser grid (about 2 mm pixels, 4-6 mm slices). Its
signal is the spin echo of :mod:`parotidlib.synth.signal` (the T2-weighted-like ``S0``),
with fat saturation, attenuated by diffusion (Stejskal & Tanner 1965, J Chem Phys 42:288):
``S = S0 exp(-b ADC)`` per compartment, before the partial-volume average over each voxel.
The scanner's ADC map is computed from the two noisy magnitude images as scanners do,
``ADC = ln(S_0 / S_b) / b``, set to 0 where the b = 0 signal is below the noise, and stored in
10⁻⁶ mm²/s (µm²/s) integers, as Siemens writes its ADC maps.

ADC values (10⁻³ mm²/s, field-independent to first order) are per-patient uniform draws in
:data:`ADC_RANGES` (docs/synthetic-cohort.md, "Diffusion", gives the source of every row);
each tumour draws its own value for its tissues, by histology and phenotype
(:data:`ADC_VARIANTS`). Inside a tissue the ADC follows the T2 texture,
``ADC = ADC_tissue (T2 / T2_tissue) ** 0.5``: both rise with free water (a modelling
assumption). All of it is drawn from the patient's own diffusion stream
(:func:`diffusion_rng`), so the T1, CE-T1 and T2 series are the same with diffusion or without.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parotidlib.synth import signal
from parotidlib.synth.phantom import Maps, Phantom
from parotidlib.synth.render import render_series
from parotidlib.synth.scanners import SeriesProtocol
from parotidlib.synth.tissues import Tissue, TissueTable, draw_range
from parotidlib.synth.tumours import Tumour

__all__ = ["ADC_RANGES", "ADC_UNIT_MM2_S", "ADC_VARIANTS", "B_VALUE", "DIFFUSION_SERIES",
           "EPI_PROFILES", "EpiProfile", "acquire_diffusion", "adc_from_images",
           "diffusion_rng", "draw_adc_table", "draw_epi_protocol", "dwi_signal"]

#: The diffusion series, in manifest order: the ADC map and the DWI at b = B_VALUE.
DIFFUSION_SERIES: tuple[str, ...] = ("adc", "dwi")
#: Diffusion weighting of the DWI series (s/mm²).
B_VALUE = 800.0
#: Stored ADC unit: 1e-6 mm²/s per integer step (µm²/s), as Siemens ADC maps.
ADC_UNIT_MM2_S = 1e-6
#: Largest stored ADC (µm²/s): beyond free water at 37 °C (3.0e-3 mm²/s).
ADC_MAX = 4000
#: b = 0 signals below this many noise standard deviations get ADC 0 (scanners mask the
#: background of their ADC maps the same way).
NOISE_MASK_SIGMAS = 3.0

#: ADC ranges (1e-3 mm²/s) of the water compartment, per tissue; sources in
#: docs/synthetic-cohort.md ("Diffusion"). Vessels: flowing blood's pseudo-diffusion, which
#: leaves no signal at b = 800 (Le Bihan et al. 1988, Radiology 168:497).
ADC_RANGES: dict[Tissue, tuple[float, float]] = {
    Tissue.AIR: (0.0, 0.0),
    Tissue.FAT: (0.01, 0.05),
    Tissue.MUSCLE: (1.3, 1.6),
    Tissue.GLAND: (0.85, 1.2),
    Tissue.MARROW: (0.4, 0.6),
    Tissue.CORTEX: (0.0, 0.0),
    Tissue.FLUID: (2.9, 3.1),
    Tissue.CORD: (0.9, 1.1),
    Tissue.VESSEL: (8.0, 12.0),
    Tissue.MUCOSA: (1.1, 1.5),
    Tissue.CAPSULE: (0.9, 1.3),
    Tissue.PA_STROMA: (1.8, 2.3),
    Tissue.PA_CELLULAR: (1.2, 1.6),
    Tissue.WARTHIN_SOLID: (0.7, 1.0),
    Tissue.CYST: (2.2, 3.0),
    Tissue.PROTEIN: (0.8, 1.5),
    Tissue.MALIGNANT: (0.8, 1.1),
    Tissue.NECROSIS: (1.6, 2.4),
    Tissue.BCA_SOLID: (1.0, 1.45),
    Tissue.MEC_SOLID: (0.8, 1.1),
}
#: Fat's own ADC (1e-3 mm²/s): lipids barely diffuse; the value is an assumption (its signal
#: is mostly suppressed on DWI anyway).
FAT_ADC = (0.01, 0.05)
#: A phenotype's replacement ranges (histology, phenotype) -> {tissue: range}: the cellular
#: pleomorphic adenoma's less myxoid stroma, and low-grade carcinomas (less cellular).
ADC_VARIANTS: dict[tuple[str, str], dict[Tissue, tuple[float, float]]] = {
    ("pleomorphic_adenoma", "cellular"): {Tissue.PA_STROMA: (1.4, 1.8)},
    ("malignant", "low_grade"): {Tissue.MALIGNANT: (1.1, 1.5)},
    ("mucoepidermoid_carcinoma", "low_grade"): {Tissue.MEC_SOLID: (1.1, 1.5)},
}
#: Exponent of the ADC's dependence on the T2 texture inside a tissue (an assumption).
T2_TEXTURE_EXPONENT = 0.5


@dataclass(frozen=True)
class EpiProfile:
    """Diffusion EPI ranges of one field strength (typical clinical head-and-neck protocols;
    not in Xia et al. 2021, which had no DWI: assumptions within usual practice).

    Attributes
    ----------
    tr_ms, te_ms : (float, float)
        Repetition and echo time (ms).
    pixel_size_mm, slice_thickness_mm : (float, float)
        Acquired in-plane resolution and slice thickness.
    snr : (float, float)
        Signal-to-noise ratio of muscle at b = 0.
    level : (float, float)
        Stored intensity of muscle at b = 0.
    fat_sat : (float, float)
        Fat-suppression efficiency (fraction of fat signal removed; SPAIR or STIR).
    """

    tr_ms: tuple[float, float]
    te_ms: tuple[float, float]
    pixel_size_mm: tuple[float, float]
    slice_thickness_mm: tuple[float, float]
    snr: tuple[float, float]
    level: tuple[float, float]
    fat_sat: tuple[float, float]


#: Per field strength (T): a longer TE at 1.5 T (weaker gradients), more SNR at 3 T.
EPI_PROFILES: dict[float, EpiProfile] = {
    1.5: EpiProfile(tr_ms=(3000.0, 5000.0), te_ms=(70.0, 95.0), pixel_size_mm=(1.6, 2.2),
                    slice_thickness_mm=(4.0, 6.0), snr=(12.0, 18.0), level=(250.0, 350.0),
                    fat_sat=(0.9, 0.98)),
    3.0: EpiProfile(tr_ms=(3500.0, 6000.0), te_ms=(55.0, 75.0), pixel_size_mm=(1.6, 2.2),
                    slice_thickness_mm=(4.0, 6.0), snr=(16.0, 24.0), level=(250.0, 350.0),
                    fat_sat=(0.9, 0.98)),
}


def diffusion_rng(seed: int, index: int) -> np.random.Generator:
    """The diffusion stream of patient ``index`` (apart from its main stream, spawn key 1)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2, index)))


def draw_adc_table(rng: np.random.Generator, tumours: list[Tumour]) -> tuple[np.ndarray, float]:
    """One patient's ADC per tissue (1e-3 mm²/s), the tumours' own values included.

    Parameters
    ----------
    rng : numpy.random.Generator
        The patient's diffusion stream.
    tumours : list of Tumour
        Each draws the ADC of its histology's tissues (its phenotype's variant where there is
        one); a second tumour's values replace the first's, as for the relaxation times.

    Returns
    -------
    adc : ndarray of float32, shape (n_tissues,)
    fat_adc : float
    """
    adc = np.zeros(len(Tissue), np.float32)
    for tissue, bounds in ADC_RANGES.items():
        adc[tissue] = draw_range(rng, bounds)
    for tumour in tumours:
        variant = ADC_VARIANTS.get((tumour.histology, tumour.phenotype), {})
        for tissue in tumour.tissue_values:
            adc[tissue] = draw_range(rng, variant.get(tissue, ADC_RANGES[tissue]))
    return adc, draw_range(rng, FAT_ADC)


def _u(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def draw_epi_protocol(rng: np.random.Generator, field_strength_t: float,
                      protocols: dict[str, SeriesProtocol], z_extent: tuple[float, float]
                      ) -> SeriesProtocol:
    """The diffusion EPI grid and acquisition of one patient.

    The field of view is the largest that keeps every voxel inside the area the other
    series cover (where the phantom is painted); the pixel is at least the coarsest pixel of
    the other series (small test volumes scale them up); the slab covers the glands and
    tumours like theirs, with its own slice positions.

    Parameters
    ----------
    rng : numpy.random.Generator
        The patient's diffusion stream.
    field_strength_t : float
        Selects :data:`EPI_PROFILES`.
    protocols : dict[str, SeriesProtocol]
        The patient's T1, CE-T1 and T2 protocols.
    z_extent : (float, float)
        Lowest and highest z (mm) of the glands and tumours.

    Returns
    -------
    SeriesProtocol
        ``series="dwi"``, ``sequence="epi"``; ``flip_deg`` 90.
    """
    prof = EPI_PROFILES[field_strength_t]
    pixel = round(max(_u(rng, prof.pixel_size_mm), *(p.pixel_mm for p in protocols.values())), 4)
    thick = round(_u(rng, prof.slice_thickness_mm), 1)
    lo = np.max([[p.axis(0)[0], p.axis(1)[0]] for p in protocols.values()], axis=0)
    hi = np.min([[p.axis(0)[-1], p.axis(1)[-1]] for p in protocols.values()], axis=0)
    n_xy = np.maximum(np.floor((hi - lo) / pixel).astype(int), 1)
    origin_xy = (lo + hi) / 2.0 - (n_xy - 1) / 2.0 * pixel
    z_lo, z_hi = z_extent
    margin = thick * rng.uniform(0.5, 1.2)
    nz = int(np.ceil((z_hi - z_lo + 2 * margin) / thick))
    z0 = (z_lo + z_hi) / 2.0 - (nz - 1) / 2.0 * thick + rng.uniform(-0.5, 0.5) * thick
    return SeriesProtocol(
        series="dwi", sequence="epi", tr_ms=round(_u(rng, prof.tr_ms), 1),
        te_ms=round(_u(rng, prof.te_ms), 1), flip_deg=90.0, fat_sat=_u(rng, prof.fat_sat),
        pixel_mm=pixel, thickness_mm=thick, shape=(int(n_xy[0]), int(n_xy[1]), nz),
        origin_mm=(round(float(origin_xy[0]), 3), round(float(origin_xy[1]), 3),
                   round(float(z0), 3)),
        level=_u(rng, prof.level), snr=_u(rng, prof.snr),
        bias=(rng.normal(0.0, 0.12), rng.normal(0.0, 0.12), rng.uniform(0.05, 0.3),
              rng.normal(0.0, 0.1)))


def dwi_signal(maps: Maps, table: TissueTable, adc: np.ndarray, fat_adc: float,
               proto: SeriesProtocol, b_value: float) -> np.ndarray:
    """Noise-free diffusion-weighted spin-echo EPI signal of every voxel of ``maps``.

    Water: ``PD (1 - exp(-TR/T1)) exp(-TE/T2) exp(-b ADC)``, with the flow void of spin
    echo; fat: the same with fat's values, reduced by the fat saturation; mixed by the fat
    fraction as in :func:`parotidlib.synth.signal.series_signal`.

    Parameters
    ----------
    maps : Maps
    table : TissueTable
        The phantom's table (tumour values included): the T2 texture reference.
    adc : ndarray, shape (n_tissues,)
        ADC per tissue (1e-3 mm²/s), from :func:`draw_adc_table`.
    fat_adc : float
    proto : SeriesProtocol
        The EPI protocol (TR, TE, fat saturation).
    b_value : float
        s/mm².

    Returns
    -------
    ndarray of float32, the shape of ``maps.tissue``
    """
    tissue = maps.tissue
    voxel_adc = adc[tissue] * (maps.t2_ms / table.t2_ms[tissue]) ** T2_TEXTURE_EXPONENT
    water = signal.spin_echo(maps.pd, maps.t1_ms, maps.t2_ms, proto.tr_ms, proto.te_ms)
    water = water * np.exp(-b_value * 1e-3 * voxel_adc)
    water = np.where(tissue == Tissue.VESSEL, water * signal.FLOW_VOID, water)
    fat = signal.spin_echo(table.fat_pd, table.fat_t1_ms, table.fat_t2_ms, proto.tr_ms,
                           proto.te_ms)
    fat *= (1.0 - proto.fat_sat) * np.exp(-b_value * 1e-3 * fat_adc)
    return (water + maps.ff * (np.float32(fat) - water)).astype(np.float32, copy=False)


def _tissue_maps(table: TissueTable, tissue: Tissue) -> Maps:
    tid = np.array([tissue], np.uint8)
    return Maps(tid, table.pd[tid], table.t1_ms[tid], table.t2_ms[tid], table.conc_mM[tid],
                table.fat_fraction[tid])


def adc_from_images(s0: np.ndarray, sb: np.ndarray, b_value: float, sigma: float
                    ) -> np.ndarray:
    """The scanner's ADC map from magnitude images at b = 0 and b (int16, µm²/s).

    ``ln(S0 / Sb) / b``, clipped to ``[0, ADC_MAX]``; 0 where ``S0`` is below
    :data:`NOISE_MASK_SIGMAS` noise standard deviations (background, bone, air).
    """
    floor = np.float32(1e-6)
    ratio = np.maximum(s0, floor) / np.maximum(sb, floor)
    adc = np.log(ratio) / (b_value * ADC_UNIT_MM2_S)
    adc[s0 < NOISE_MASK_SIGMAS * sigma] = 0.0
    return np.rint(np.clip(adc, 0, ADC_MAX)).astype(np.int16)


def acquire_diffusion(phantom: Phantom, proto: SeriesProtocol, adc: np.ndarray,
                      fat_adc: float, centre_mm: np.ndarray, rng: np.random.Generator,
                      b_value: float = B_VALUE
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The DWI (int16, b = ``b_value``), ADC map (int16, µm²/s) and label map of one patient.

    Both b-values share the grid, the bias field and the receiver scale (muscle at b = 0 is
    stored at ``proto.level``); each gets its own Rician noise of standard deviation muscle
    b = 0 signal over ``proto.snr``, from ``rng`` (the diffusion stream).
    """
    table = phantom.table
    images = []
    labels = None
    for b in (0.0, b_value):
        image, lab = render_series(
            phantom, proto,
            signal_of=lambda maps, b=b: dwi_signal(maps, table, adc, fat_adc, proto, b))
        labels = lab if labels is None else labels
        images.append(image)
    muscle = float(dwi_signal(_tissue_maps(table, Tissue.MUSCLE), table, adc, fat_adc, proto,
                              0.0)[0])
    sigma = muscle / proto.snr
    bias = signal.bias_field(proto, centre_mm)
    s0, sb = (signal.add_rician_noise(img * bias, sigma, rng) for img in images)
    dwi = signal.store_int16(sb, proto.level / muscle)
    return dwi, adc_from_images(s0, sb, b_value, sigma), labels
