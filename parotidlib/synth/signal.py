"""MR signal equations and the acquisition chain (bias field, Rician noise, stored integers).

Spin echo (T1- and T2-weighted series), ignoring the small refocusing term:
``S = PD (1 - exp(-TR/T1)) exp(-TE/T2)``. Spoiled gradient echo (CE-T1, Ernst 1966; Haacke
et al., *Magnetic Resonance Imaging: Physical Principles and Sequence Design*, ch. 18):
``S = PD sin(a) (1 - E1) / (1 - cos(a) E1) exp(-TE/T2*)``, ``E1 = exp(-TR/T1)``.
Contrast agent shortens T1: ``1/T1' = 1/T1 + r1 C`` (gadopentetate r1 about 4 /mM/s;
Rohrer et al. 2005, Invest Radiol 40:715). Magnitude images of a complex signal with
Gaussian noise in both channels are Rician (Gudbjartsson & Patz 1995, MRM 34:910).
"""

from __future__ import annotations

import numpy as np

from parotidlib.synth.phantom import Maps
from parotidlib.synth.scanners import SeriesProtocol
from parotidlib.synth.tissues import Tissue, TissueTable

__all__ = [
    "R1_PER_MM_S",
    "add_rician_noise",
    "bias_field",
    "enhanced_t1",
    "series_signal",
    "spin_echo",
    "spoiled_gradient_echo",
    "store_int16",
]

#: Gadopentetate relaxivity r1 (/mM/s) at 1.5 T and 3 T (Rohrer et al. 2005).
R1_PER_MM_S = {1.5: 4.1, 3.0: 3.7}
#: Reversible dephasing rate R2' (/s) giving T2* from T2 in the gradient echo.
R2_PRIME_PER_S = {1.5: 20.0, 3.0: 40.0}
#: Share of flowing blood's signal left on spin echo (spins leave the slice: flow void).
FLOW_VOID = 0.08


def spin_echo(pd, t1_ms, t2_ms, tr_ms: float, te_ms: float):
    """Spin-echo signal ``PD (1 - exp(-TR/T1)) exp(-TE/T2)`` (arrays broadcast; ms)."""
    return pd * (1.0 - np.exp(-tr_ms / t1_ms)) * np.exp(-te_ms / t2_ms)


def spoiled_gradient_echo(pd, t1_ms, t2s_ms, tr_ms: float, te_ms: float, flip_deg: float):
    """Spoiled gradient-echo signal (steady state; arrays broadcast; ms, degrees)."""
    a = np.deg2rad(flip_deg)
    e1 = np.exp(-tr_ms / t1_ms)
    return pd * np.sin(a) * (1.0 - e1) / (1.0 - np.cos(a) * e1) * np.exp(-te_ms / t2s_ms)


def enhanced_t1(t1_ms, conc_mM, r1_per_mM_s: float = 4.0):
    """T1 (ms) after contrast uptake: ``1 / (1/T1 + r1 C)`` with r1 in /mM/s, C in mM."""
    return 1.0 / (1.0 / t1_ms + r1_per_mM_s * 1e-3 * conc_mM)


def _flow_factor(sequence: str) -> np.ndarray:
    f = np.ones(len(Tissue), np.float32)
    if sequence == "se":
        f[Tissue.VESSEL] = FLOW_VOID
    return f


def series_signal(maps: Maps | None, table: TissueTable, proto: SeriesProtocol,
                  tissue: Tissue | None = None) -> np.ndarray:
    """Noise-free signal of every voxel of ``maps`` for one series (float32, same shape).

    Water and fat compartments are computed separately and mixed by the fat fraction; on
    CE-T1 the water T1 is shortened by the contrast agent and the fat signal is reduced by
    the fat saturation. With ``maps=None`` and a ``tissue``, returns the signal of that
    tissue at its table values (used to set the receiver scale).
    """
    field = table.field_strength_t
    if maps is None:
        if tissue is None:
            raise ValueError("series_signal needs maps or a tissue, got neither")
        tid = np.array([tissue], np.uint8)
        maps = Maps(tid, table.pd[tid], table.t1_ms[tid], table.t2_ms[tid],
                    table.conc_mM[tid], table.fat_fraction[tid])
    if proto.sequence == "se":
        water = spin_echo(maps.pd, maps.t1_ms, maps.t2_ms, proto.tr_ms, proto.te_ms)
        water *= _flow_factor("se")[maps.tissue]
        fat = spin_echo(table.fat_pd, table.fat_t1_ms, table.fat_t2_ms, proto.tr_ms,
                        proto.te_ms)
    elif proto.sequence == "spgr":
        r1, r2p = R1_PER_MM_S[field], R2_PRIME_PER_S[field] * 1e-3
        t1c = enhanced_t1(maps.t1_ms, maps.conc_mM, r1)
        t2s = 1.0 / (1.0 / maps.t2_ms + r2p)
        water = spoiled_gradient_echo(maps.pd, t1c, t2s, proto.tr_ms, proto.te_ms,
                                      proto.flip_deg)
        fat = spoiled_gradient_echo(table.fat_pd, table.fat_t1_ms,
                                    1.0 / (1.0 / table.fat_t2_ms + r2p), proto.tr_ms,
                                    proto.te_ms, proto.flip_deg) * (1.0 - proto.fat_sat)
    else:
        raise ValueError(f"sequence must be 'se' or 'spgr', got {proto.sequence!r}")
    return (water + maps.ff * (np.float32(fat) - water)).astype(np.float32, copy=False)


def bias_field(proto: SeriesProtocol, centre_mm: np.ndarray) -> np.ndarray:
    """Smooth multiplicative receive-coil bias on the series grid, shape ``proto.shape``.

    ``exp(cx X + cy Y + cr (X^2 + Y^2) + cz Z)`` with coordinates in decimetres from the
    neck's centre: a gentle gradient plus brighter periphery near the surface coil.
    """
    cx, cy, cr, cz = proto.bias
    X = (proto.axis(0) - centre_mm[0]) / 100.0
    Y = (proto.axis(1) - centre_mm[1]) / 100.0
    Z = (proto.axis(2) - centre_mm[2]) / 100.0
    bx = np.exp(cx * X + cr * X * X)
    by = np.exp(cy * Y + cr * Y * Y)
    bz = np.exp(cz * Z)
    return (bx[:, None, None] * by[None, :, None] * bz[None, None, :]).astype(np.float32)


def add_rician_noise(signal: np.ndarray, sigma: float, rng: np.random.Generator,
                     out: np.ndarray | None = None) -> np.ndarray:
    """Magnitude of ``signal + sigma (n1 + i n2)``, n1, n2 standard normal (float32).

    ``out`` may be ``signal`` itself (computed in place, saving memory traffic).
    """
    sigma = np.float32(sigma)
    real = rng.standard_normal(signal.shape, dtype=np.float32)
    real *= sigma
    real += signal
    real *= real
    imag = rng.standard_normal(signal.shape, dtype=np.float32)
    imag *= sigma
    imag *= imag
    real += imag
    return np.sqrt(real, out=out)


def store_int16(values: np.ndarray, gain: float) -> np.ndarray:
    """Scale by the receiver ``gain``, round and clip to the int16 range (>= 0)."""
    out = values * np.float32(gain)
    np.rint(out, out=out)
    return np.clip(out, 0, np.iinfo(np.int16).max).astype(np.int16)
