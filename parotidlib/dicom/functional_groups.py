"""The functional groups of a multi-frame DICOM object (Enhanced MR, Legacy Converted
Enhanced MR): which item of a functional group macro applies to a frame (DICOM PS3.3
C.7.6.16). Shared by the header scan (:mod:`.headers`) and the diffusion reader
(:mod:`.diffusion`).
"""

from __future__ import annotations

__all__ = ["functional_group"]


def functional_group(ds, macro: str, frame: int = 0):
    """The item of the functional group macro ``macro`` that applies to ``frame``.

    Parameters
    ----------
    ds : pydicom.Dataset
        A multi-frame dataset (or any dataset: then None).
    macro : str
        The macro's sequence keyword, e.g. ``"PixelMeasuresSequence"`` (PS3.3 C.7.6.16.2.1),
        ``"PlanePositionSequence"`` (C.7.6.16.2.3), ``"MREchoSequence"`` (C.8.13.5.4).
    frame : int
        0-based frame index.

    Returns
    -------
    pydicom.Dataset or None
        The frame's item in PerFrameFunctionalGroupsSequence when it holds the macro, else
        the SharedFunctionalGroupsSequence item's (PS3.3 C.7.6.16.1.1), else None.
    """
    try:
        per_frame = ds.get("PerFrameFunctionalGroupsSequence")
        if per_frame and 0 <= frame < len(per_frame):
            seq = per_frame[frame].get(macro)
            if seq:
                return seq[0]
        shared = ds.get("SharedFunctionalGroupsSequence")
        if shared:
            seq = shared[0].get(macro)
            if seq:
                return seq[0]
    except Exception:  # a malformed sequence: treat as absent
        return None
    return None
