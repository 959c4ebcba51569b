"""Repository-wide pytest setup.

Chapters run in the `smoke` profile under pytest (including `pytest --nbmake book/`) unless PERTURBX_PROFILE is
already set. nbmake's kernels inherit this process's environment, so setting it here reaches every chapter.
"""

import os

os.environ.setdefault("PERTURBX_PROFILE", "smoke")
