"""Running the study: stages, the pipeline, batches, the CLI.

The processes that run the pipeline (the CLI, ``run_study``, batch members, SLURM jobs) show
plain text progress bars, and so do the kernels they start, which inherit the setting
(:mod:`parotidlib.progress`); a notebook opened by a person keeps its widget bars.
"""

import os as _os

_os.environ.setdefault("PAROTIDLIB_PROGRESS", "text")
