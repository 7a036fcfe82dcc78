"""Test configuration: single-threaded BLAS (small LAPACK calls contend badly on 2 cores),
float64 available (accuracy tests ask for it explicitly), and a JAX compilation cache for the
session.

The cache is a fresh temporary folder per test session (so a run on a fresh clone pays every
compile once, and nothing stale is ever read), shared by the pytest workers and by the ``eoslab``
processes the CLI tests start: many tests build trainers of the same shapes and the CLI tests run
the same small configs again and again, whose programs then compile once per session.
``EOSLAB_TEST_JAX_CACHE`` names a folder to use instead (kept between sessions).
"""
import os
import shutil
import tempfile

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# The suite is dominated by XLA compilation of small programs: without LLVM's optimisation passes they compile
# about a third faster (the same programs, computing the same values; long runs execute slower).  The slow
# tests (make test-slow: full-length paper runs) keep XLA's defaults; so does any XLA_FLAGS given.
if "XLA_FLAGS" not in os.environ and os.environ.get("EOSLAB_TEST_XLA_DEFAULTS") != "1":
    os.environ["XLA_FLAGS"] = "--xla_backend_optimization_level=0"

_OWNED = None  # the folder this process created (the xdist controller, or a plain pytest run)
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _OWNED = os.environ.get("EOSLAB_TEST_JAX_CACHE") or tempfile.mkdtemp(prefix="eoslab-test-jax-cache-")
    # set before jax is imported, and inherited by the pytest workers and the subprocesses of the CLI tests
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWNED
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)


def pytest_unconfigure(config):
    if _OWNED and not os.environ.get("EOSLAB_TEST_JAX_CACHE") and not hasattr(config, "workerinput"):
        shutil.rmtree(_OWNED, ignore_errors=True)
