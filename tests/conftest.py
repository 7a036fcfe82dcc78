"""Test configuration: single-threaded BLAS (small LAPACK calls contend badly on 2 cores),
and float64 available (accuracy tests ask for it explicitly)."""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
