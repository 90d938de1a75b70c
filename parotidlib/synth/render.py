"""Sample a phantom onto one series' grid: partial volume, labels, bias, noise, int16.

The noise-free signal is computed on the phantom's fine grids and averaged over each
series voxel (slice thickness through-plane, pixel size in-plane; see
:func:`parotidlib.synth.sampling.average_matrix`). The label of a voxel is the structure
that fills at least half of it: tumour (3) if its share is >= 0.5, else the side's gland
(1 right, 2 left) if gland and tumour together fill >= 0.5, else background.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from parotidlib.constants import GLAND_LABEL, LABEL_TUMOR
from parotidlib.synth.phantom import FINE_MM, Maps, Phantom
from parotidlib.synth.sampling import apply_separable, average_matrix
from parotidlib.synth.scanners import SeriesProtocol
from parotidlib.synth.signal import (
    add_rician_noise,
    bias_field,
    series_signal,
    store_int16,
)
from parotidlib.synth.tissues import Tissue

__all__ = ["acquire", "render_series"]


def _inside(centres: np.ndarray, width: float, axis: np.ndarray) -> slice:
    """Output voxels whose averaging interval lies within the samples ``axis``."""
    half = width / 2.0 + FINE_MM
    ok = np.flatnonzero((centres - half >= axis[0]) & (centres + half <= axis[-1]))
    return slice(0, 0) if ok.size == 0 else slice(int(ok[0]), int(ok[-1]) + 1)


def render_series(phantom: Phantom, proto: SeriesProtocol,
                  signal_of: Callable[[Maps], np.ndarray] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free signal and label map of one series.

    Parameters
    ----------
    phantom : Phantom
    proto : SeriesProtocol
    signal_of : callable, optional
        The signal of the voxels of a :class:`Maps` (float32, its shape); default the
        series' signal equation (:func:`parotidlib.synth.signal.series_signal`). The
        diffusion series pass their own (:mod:`parotidlib.synth.diffusion`).

    Returns
    -------
    signal : ndarray of float32, shape ``proto.shape``
        Before bias field, noise and scaling.
    labels : ndarray of uint8, shape ``proto.shape``
    """
    xs, ys, zs = proto.axis(0), proto.axis(1), proto.axis(2)
    wx = average_matrix(phantom.x, xs, proto.pixel_mm)
    wy = average_matrix(phantom.y, ys, proto.pixel_mm)
    if signal_of is None:
        def signal_of(maps: Maps) -> np.ndarray:
            return series_signal(maps, phantom.table, proto)
    static = signal_of(phantom.maps2d)
    plane = apply_separable(static, [wx, wy])
    signal = np.repeat(plane[:, :, None], len(zs), axis=2)
    labels = np.zeros(proto.shape, dtype=np.uint8)
    for region in phantom.regions:
        wz = average_matrix(region.z, zs, proto.thickness_mm)
        covered = np.asarray(wz.sum(axis=1)).ravel()
        ks = np.flatnonzero(covered > 1e-6)
        xr, yr = phantom.x[region.ix], phantom.y[region.iy]
        si, sj = _inside(xs, proto.pixel_mm, xr), _inside(ys, proto.pixel_mm, yr)
        if ks.size == 0 or si.stop <= si.start or sj.stop <= sj.start:
            continue
        wzk = wz[ks]
        wxr = average_matrix(xr, xs[si], proto.pixel_mm)
        wyr = average_matrix(yr, ys[sj], proto.pixel_mm)
        # static voxels repeat the axial map; only the gland and tumour are computed in 3-D
        fine = np.repeat(static[region.ix, region.iy][:, :, None], region.z.size, axis=2)
        fine[region.dynamic] = signal_of(region.maps)
        # through-plane average; the part of a slice outside the region is the static map
        thick = apply_separable(fine, [None, None, wzk])
        thick += static[region.ix, region.iy][:, :, None] * (1.0 - covered[ks])[None, None, :]
        signal[si, sj, ks[0]:ks[-1] + 1] = apply_separable(thick, [wxr, wyr, None])
        fractions = []
        for mask in (region.tumour, region.gland):
            f = apply_separable(mask, [None, None, wzk])
            fractions.append(apply_separable(f, [wxr, wyr, None]))
        tumour, gland = fractions
        lab = np.where(tumour >= 0.5, LABEL_TUMOR,
                       np.where(gland >= 0.5, GLAND_LABEL[region.side], 0)).astype(np.uint8)
        block = labels[si, sj, ks[0]:ks[-1] + 1]
        np.maximum(block, lab, out=block)
    return signal, labels


def acquire(signal: np.ndarray, phantom: Phantom, proto: SeriesProtocol,
            centre_mm: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bias field, Rician noise and the scanner's intensity scale: the stored int16 image.

    The receiver scale maps the signal of muscle to ``proto.level``; the noise standard
    deviation is the muscle signal over ``proto.snr``.
    """
    muscle = float(series_signal(None, phantom.table, proto, tissue=Tissue.MUSCLE)[0])
    signal *= bias_field(proto, centre_mm)  # the rendered signal is ours to modify
    return store_int16(add_rician_noise(signal, muscle / proto.snr, rng, out=signal),
                       proto.level / muscle)
