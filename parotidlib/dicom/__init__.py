"""A hospital's DICOM export in: MR series with RTSTRUCT (or DICOM SEG) contours to a cohort.

Modules, one job each:

* :mod:`.headers`  walk a DICOM tree, read headers only, group files into series;
* :mod:`.volume`   stack one MR series into a NIfTI volume with the RAS+ affine its geometry
  implies, with the checks a study needs (one orientation, even slice spacing, ...);
* :mod:`.contours` rasterise RTSTRUCT ROIs (and read DICOM SEG) onto a series' grid;
* :mod:`.rules`    the rules file (YAML) and the normalisation of descriptions and names;
* :mod:`.contrast` was contrast given: tags, then acquisition order, then text with negation;
* :mod:`.roles`    which series is T1, CE-T1 and T2 (and which echo of a dual-echo series);
* :mod:`.roinames` which ROI is which label: TG-263 names whole, derived structures never;
* :mod:`.structures` every structure set read, one chosen per label (approved, newest);
* :mod:`.importer` the import itself: a validated cohort folder and its import report.

The synthetic cohort can be written as DICOM (:mod:`parotidlib.synth.dicom`) to test the
round trip against the NIfTI cohort it comes from.
"""
