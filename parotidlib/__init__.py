"""parotidlib: the library of the parotid study kit (Xia et al. 2021, Front. Oncol. 11:632104).

Cohort I/O and the synthetic cohort, preprocessing into the paper's four-channel slices,
the reduced ResNet18, training, evaluation, statistics and the patient-level decision rule.
"""

from parotidlib import threads as _threads

# Thread count and OpenMP wait policy for this process and every process it starts (kernels,
# batch members, SLURM jobs), before torch loads (parotidlib.threads).
_threads.apply()

from parotidlib.constants import CHANNELS, CLASSES, HISTOLOGIES, SERIES  # noqa: E402

__all__ = ["CHANNELS", "CLASSES", "HISTOLOGIES", "SERIES", "__version__"]
__version__ = "0.1.0"
