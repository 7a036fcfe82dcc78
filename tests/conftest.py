"""Test configuration: single-threaded BLAS (small LAPACK calls contend badly on 2 cores),
float64 available (accuracy tests ask for it explicitly), and a persistent JAX compilation
cache shared by the pytest workers: many tests build trainers of the same shapes, whose
programs then compile once (``EOSLAB_TEST_JAX_CACHE`` moves it; ``make clean`` removes it)."""
import os
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_compilation_cache_dir",
                  os.environ.get("EOSLAB_TEST_JAX_CACHE", str(Path(__file__).resolve().parent.parent / ".jax_cache")))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
