"""Normal anatomy at the level of the parotid glands, in millimetres.

Patient coordinates are RAS+ millimetres relative to the neck's centre at the glands' mid
level: +x is the patient's right, +y anterior, +z superior (so the right parotid lies at
+x). The axial cross-section is a simplified atlas of the level of the mandibular ramus and
the upper cervical spine (cf. Som & Curtin, *Head and Neck Imaging*, ch. "Parotid gland"):
neck outline with subcutaneous fat; airway with mucosa; vertebral body and spinal canal;
per side the mandibular ramus (cortex and marrow) with the masseter laterally and the medial
pterygoid medially, parapharyngeal fat, sternocleidomastoid, carotid artery and jugular vein,
and the retromandibular vein and external carotid artery inside the parotid.

Everything except the glands (and tumours) is a prism along z over the imaged slab (a few
centimetres), so it is drawn once in 2-D; the glands are 3-D shapes drawn in
:mod:`parotidlib.synth.phantom`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from parotidlib.synth.tissues import Tissue

__all__ = ["Ellipse", "GlandShape", "NeckAnatomy", "draw_anatomy", "make_room", "paint_static"]

#: +1 for the right side (+x in RAS+), -1 for the left.
SIDE_SIGN = {"right": 1.0, "left": -1.0}


@dataclass(frozen=True)
class Ellipse:
    """A filled (super)ellipse in the axial plane (mm): ``|u/ax|^p + |v/ay|^p <= 1``.

    ``u, v`` are the coordinates relative to ``(cx, cy)`` rotated by ``-angle_deg``.
    """

    cx: float
    cy: float
    ax: float
    ay: float
    angle_deg: float = 0.0
    power: float = 2.0
    #: semi-axis for u < 0 (None: ``ax``); lets a tumour bulge one side of the neck
    ax_neg: float | None = None

    def bounds(self) -> tuple[float, float, float, float]:
        """Conservative (xmin, xmax, ymin, ymax) in mm."""
        r = max(self.ax, self.ay, self.ax_neg or 0.0)
        return self.cx - r, self.cx + r, self.cy - r, self.cy + r

    def inside(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Boolean mask for coordinates broadcast from ``x`` (n, 1) and ``y`` (1, m) (mm)."""
        a = np.deg2rad(self.angle_deg)
        dx, dy = x - self.cx, y - self.cy
        u = dx * np.cos(a) + dy * np.sin(a)
        v = -dx * np.sin(a) + dy * np.cos(a)
        ax = self.ax if self.ax_neg is None else np.where(u < 0, self.ax_neg, self.ax)
        if self.power == 2.0:
            return (u / ax) ** 2 + (v / self.ay) ** 2 <= 1.0
        return np.abs(u / ax) ** self.power + np.abs(v / self.ay) ** self.power <= 1.0

    def shrunk(self, by_mm: float) -> Ellipse:
        """The same shape with every semi-axis reduced by ``by_mm``."""
        neg = None if self.ax_neg is None else max(self.ax_neg - by_mm, 0.5)
        return replace(self, ax=max(self.ax - by_mm, 0.5), ay=max(self.ay - by_mm, 0.5),
                       ax_neg=neg)

    def boundary(self, n: int = 72) -> np.ndarray:
        """``n`` points (n, 2) on the outline (mm)."""
        t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
        u = np.where(np.cos(t) < 0, self.ax_neg or self.ax, self.ax) * np.cos(t)
        v = self.ay * np.sin(t)
        a = np.deg2rad(self.angle_deg)
        return np.column_stack([self.cx + u * np.cos(a) - v * np.sin(a),
                                self.cy + u * np.sin(a) + v * np.cos(a)])


@dataclass(frozen=True)
class GlandShape:
    """One parotid gland: a superficial lobe and a deep lobe (ellipsoids), in mm.

    The superficial lobe's half-heights differ above and below its centre (a long lower pole,
    the "tail"), and below the centre it drifts posteriorly and laterally. The surface is
    roughened by a smooth random field (``roughness`` times the field is added to the
    implicit function).
    """

    side: str
    centre: tuple[float, float, float]
    rx: float
    ry: float
    h_up: float
    h_down: float
    tail_slope: tuple[float, float]  # (lateral, posterior) drift in mm per mm below centre
    deep_centre: tuple[float, float, float]
    deep_radii: tuple[float, float, float]
    roughness: float

    def bounds(self, margin_mm: float = 0.0) -> np.ndarray:
        """Conservative [[xmin, xmax], [ymin, ymax], [zmin, zmax]] (mm)."""
        grow = np.sqrt(1.0 + 2.0 * self.roughness)
        xc, yc, zc = self.centre
        lat, post = self.tail_slope
        sgn = SIDE_SIGN[self.side]
        tail_x = sgn * lat * self.h_down
        tail_y = -post * self.h_down
        lo = [min(xc - self.rx * grow, xc + tail_x - self.rx * grow),
              min(yc - self.ry * grow, yc + tail_y - self.ry * grow), zc - self.h_down * grow]
        hi = [max(xc + self.rx * grow, xc + tail_x + self.rx * grow),
              yc + self.ry * grow, zc + self.h_up * grow]
        dc, dr = np.asarray(self.deep_centre), np.asarray(self.deep_radii) * grow
        lo = np.minimum(lo, dc - dr) - margin_mm
        hi = np.maximum(hi, dc + dr) + margin_mm
        return np.stack([lo, hi], axis=1)

    def inside(self, x: np.ndarray, y: np.ndarray, z: np.ndarray, field: np.ndarray
               ) -> np.ndarray:
        """Boolean gland mask on a grid (``x`` (n,1,1), ``y`` (1,m,1), ``z`` (1,1,k), mm).

        ``field`` (n, m, k) is a unit-variance smooth random field that roughens the surface.
        """
        xc, yc, zc = self.centre
        sgn = SIDE_SIGN[self.side]
        dz = z - zc
        below = np.minimum(dz, 0.0)
        cx = xc - sgn * self.tail_slope[0] * below
        cy = yc + self.tail_slope[1] * below
        h = np.where(dz > 0, self.h_up, self.h_down)
        limit = 1.0 + self.roughness * np.clip(field, -2.0, 2.0)
        q = ((x - cx) / self.rx) ** 2 + ((y - cy) / self.ry) ** 2 + (dz / h) ** 2
        dcx, dcy, dcz = self.deep_centre
        drx, dry, drz = self.deep_radii
        qd = ((x - dcx) / drx) ** 2 + ((y - dcy) / dry) ** 2 + ((z - dcz) / drz) ** 2
        return (q < limit) | (qd < limit)


@dataclass(frozen=True)
class NeckAnatomy:
    """One patient's normal anatomy.

    Attributes
    ----------
    outline : Ellipse
        Skin surface (superellipse).
    fat_mm : float
        Subcutaneous fat thickness.
    layers : tuple of (str, Ellipse, Tissue)
        Named structures painted in order inside the outline (later ones on top); names
        end in ``_right`` / ``_left`` for paired structures.
    glands : dict
        ``{"right": GlandShape, "left": GlandShape}``.
    """

    outline: Ellipse
    fat_mm: float
    layers: tuple[tuple[str, Ellipse, Tissue], ...]
    glands: dict[str, GlandShape]

    def extent(self) -> np.ndarray:
        """[[xmin, xmax], [ymin, ymax]] of the body (mm)."""
        o = self.outline
        return np.array([[o.cx - (o.ax_neg or o.ax), o.cx + o.ax], [o.cy - o.ay, o.cy + o.ay]])

    def layer(self, name: str) -> Ellipse:
        """The shape of the structure ``name``."""
        return next(shape for n, shape, _ in self.layers if n == name)


def _gland(rng: np.random.Generator, side: str, s: float, outline_inner: Ellipse
           ) -> GlandShape:
    sgn = SIDE_SIGN[side]
    rx, ry = rng.uniform(9.0, 13.0) * s, rng.uniform(15.0, 20.0) * s
    yc = -6.0 * s + rng.uniform(-3.0, 3.0)
    # the lateral surface of the gland lies just under the subcutaneous fat
    frac = (1.0 - abs(yc / outline_inner.ay) ** outline_inner.power) ** (1 / outline_inner.power)
    xc = sgn * (outline_inner.ax * frac - rx - rng.uniform(0.5, 2.5))
    zc = rng.uniform(-3.0, 3.0)
    h_up, h_down = rng.uniform(14.0, 20.0) * s, rng.uniform(17.0, 26.0) * s
    deep_centre = (xc - sgn * rng.uniform(10.0, 14.0) * s, yc + rng.uniform(4.0, 8.0) * s,
                   zc + rng.uniform(0.0, 5.0))
    deep_radii = (rng.uniform(4.5, 6.5) * s, rng.uniform(7.0, 10.0) * s, 0.6 * h_up)
    return GlandShape(side=side, centre=(xc, yc, zc), rx=rx, ry=ry, h_up=h_up, h_down=h_down,
                      tail_slope=(rng.uniform(0.0, 0.12), rng.uniform(0.05, 0.25)),
                      deep_centre=deep_centre, deep_radii=deep_radii,
                      roughness=rng.uniform(0.12, 0.25))


def draw_anatomy(rng: np.random.Generator, sex: str, age: int) -> NeckAnatomy:
    """Draw one patient's neck anatomy (sizes scale with body size; men about 5 % larger).

    Parameters
    ----------
    rng : numpy.random.Generator
    sex : {"M", "F"}
    age : int
        Years (subcutaneous fat thickens slightly with age).

    Returns
    -------
    NeckAnatomy
    """
    s = rng.normal(1.0, 0.045) * (1.04 if sex == "M" else 0.97)
    outline = Ellipse(0.0, 0.0, 66.0 * s * rng.uniform(0.96, 1.04),
                      57.0 * s * rng.uniform(0.96, 1.04), 0.0, rng.uniform(2.3, 2.7))
    fat = float(np.clip(rng.uniform(4.0, 9.0) + (2.0 if sex == "F" else 0.0)
                        + 0.03 * (age - 50), 3.0, 14.0))
    inner = outline.shrunk(fat)
    glands = {side: _gland(rng, side, s, inner) for side in ("right", "left")}
    L: list[tuple[str, Ellipse, Tissue]] = [
        ("nuchal_fat", Ellipse(0.0, -inner.ay + 10.0 * s, 22.0 * s, 5.0 * s), Tissue.FAT),
    ]
    for side, g in glands.items():
        sgn = SIDE_SIGN[side]
        xg, yg, _ = g.centre
        j = rng.uniform(-1.5, 1.5, size=8)
        ramus = Ellipse(sgn * 41.0 * s + j[3], 12.0 * s, 3.8 * s, 13.0 * s,
                        sgn * (10.0 + 2 * j[4]))
        L += [
            (f"face_fat_{side}", Ellipse(sgn * (inner.ax - 10.0 * s), 14.0 * s, 10.0 * s,
                                         20.0 * s), Tissue.FAT),
            (f"parotid_space_{side}", Ellipse(xg, yg, g.rx + 2.0, g.ry + 2.0), Tissue.FAT),
            (f"parapharyngeal_fat_{side}", Ellipse(sgn * 20.0 * s, 4.0 * s, 6.0 * s, 11.0 * s,
                                                   sgn * 15.0), Tissue.FAT),
            (f"posterior_fat_{side}", Ellipse(sgn * 44.0 * s, -30.0 * s, 11.0 * s, 15.0 * s,
                                              -sgn * 30.0), Tissue.FAT),
            (f"sternocleidomastoid_{side}", Ellipse(sgn * 44.0 * s + j[0], -30.0 * s, 6.5 * s,
                                                    11.0 * s, -sgn * 30.0), Tissue.MUSCLE),
            (f"medial_pterygoid_{side}", Ellipse(sgn * 30.0 * s + j[1], 12.0 * s, 5.0 * s,
                                                 12.0 * s, sgn * 20.0), Tissue.MUSCLE),
            (f"masseter_{side}", Ellipse(sgn * 50.5 * s + j[2], 16.0 * s, 6.0 * s, 15.0 * s,
                                         -sgn * 10.0), Tissue.MUSCLE),
            (f"ramus_{side}", ramus, Tissue.CORTEX),
            (f"ramus_marrow_{side}", ramus.shrunk(1.8), Tissue.MARROW),
            (f"carotid_{side}", Ellipse(sgn * 26.0 * s + j[5], -6.0 * s, 3.0, 3.0),
             Tissue.VESSEL),
            (f"jugular_{side}", Ellipse(sgn * 31.0 * s + j[6], -12.0 * s, 5.0, 4.0),
             Tissue.VESSEL),
            # the retromandibular vein and external carotid artery run through the gland
            (f"retromandibular_{side}", Ellipse(xg - sgn * 3.0, yg + 6.0, 2.0, 2.0),
             Tissue.VESSEL),
            (f"external_carotid_{side}", Ellipse(xg - sgn * 6.0, yg + 3.0 + j[7], 1.5, 1.5),
             Tissue.VESSEL),
        ]
    airway = Ellipse(0.0, 14.0 * s, 12.0 * s, 7.5 * s)
    body = Ellipse(0.0, -18.0 * s, 13.0 * s, 10.0 * s)
    L += [
        ("mucosa", airway, Tissue.MUCOSA), ("airway", airway.shrunk(2.5), Tissue.AIR),
        ("vertebra", body, Tissue.CORTEX), ("vertebra_marrow", body.shrunk(1.5), Tissue.MARROW),
        ("posterior_arch", Ellipse(0.0, -35.0 * s, 11.0 * s, 9.0 * s), Tissue.CORTEX),
        ("spinal_canal", Ellipse(0.0, -34.0 * s, 8.0 * s, 6.5 * s), Tissue.FLUID),
        ("spinal_cord", Ellipse(0.0, -34.0 * s, 5.0 * s, 4.0 * s), Tissue.CORD),
    ]
    return NeckAnatomy(outline=outline, fat_mm=fat, layers=tuple(L), glands=glands)


#: Structures a growing parotid mass pushes forward (they move together).
_MANDIBLE = ("ramus", "ramus_marrow", "masseter", "medial_pterygoid", "face_fat")


def make_room(anatomy: NeckAnatomy, masses: list[tuple[str, float, float, float]]
              ) -> NeckAnatomy:
    """Displace structures so that parotid masses fit, as large tumours do.

    A mass pushes the mandibular ramus (with the masseter and medial pterygoid) forward
    until ``clearance`` is free between them, and bulges the skin on its side.

    Parameters
    ----------
    anatomy : NeckAnatomy
    masses : list of (side, x_mm, y_mm, radius_mm)
        In-plane centre and largest in-plane radius of each mass.

    Returns
    -------
    NeckAnatomy
        A new anatomy (the input is not modified).
    """
    clearance = 1.5
    layers = list(anatomy.layers)
    outline = anatomy.outline
    for side, x, y, radius in masses:
        names = {f"{n}_{side}" for n in _MANDIBLE}
        ramus = anatomy.layer(f"ramus_{side}")
        pts = ramus.boundary()
        gap = float(np.min(np.hypot(pts[:, 0] - x, pts[:, 1] - y))) - radius - clearance
        inside = ramus.inside(np.array([[x]]), np.array([[y]]))[0, 0]
        shift = 0.0
        while (gap < 0 or inside) and shift < 40.0:
            shift += 1.0
            moved = replace(ramus, cy=ramus.cy + shift)
            pts = moved.boundary()
            gap = float(np.min(np.hypot(pts[:, 0] - x, pts[:, 1] - y))) - radius - clearance
            inside = moved.inside(np.array([[x]]), np.array([[y]]))[0, 0]
        if shift:
            layers = [(n, replace(e, cy=e.cy + shift) if n in names else e, t)
                      for n, e, t in layers]
        need = abs(x) + radius + anatomy.fat_mm + clearance
        if side == "right" and need > outline.ax:
            outline = replace(outline, ax_neg=outline.ax_neg or outline.ax, ax=need)
        elif side == "left" and need > (outline.ax_neg or outline.ax):
            outline = replace(outline, ax_neg=need)
    return replace(anatomy, outline=outline, layers=tuple(layers))


def _box(x: np.ndarray, y: np.ndarray, bounds: tuple[float, float, float, float]
         ) -> tuple[slice, slice]:
    xmin, xmax, ymin, ymax = bounds
    return (slice(int(np.searchsorted(x, xmin)), int(np.searchsorted(x, xmax, side="right"))),
            slice(int(np.searchsorted(y, ymin)), int(np.searchsorted(y, ymax, side="right"))))


def paint_static(anatomy: NeckAnatomy, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Tissue map of the z-invariant anatomy on an axial grid.

    Parameters
    ----------
    anatomy : NeckAnatomy
    x, y : ndarray, shape (nx,), (ny,)
        Increasing sample positions (mm).

    Returns
    -------
    ndarray of uint8, shape (nx, ny)
        :class:`Tissue` values.
    """
    xx, yy = x[:, None], y[None, :]
    tissue = np.full((x.size, y.size), Tissue.AIR, dtype=np.uint8)
    tissue[anatomy.outline.inside(xx, yy)] = Tissue.FAT
    tissue[anatomy.outline.shrunk(anatomy.fat_mm).inside(xx, yy)] = Tissue.MUSCLE
    body = tissue != Tissue.AIR
    for _, shape, value in anatomy.layers:
        sx, sy = _box(x, y, shape.bounds())
        if sx.stop <= sx.start or sy.stop <= sy.start:
            continue
        mask = shape.inside(xx[sx], yy[:, sy]) & body[sx, sy]
        tissue[sx, sy][mask] = value
    return tissue
