"""The versions of the software a run was made with (stored with every run)."""
from __future__ import annotations

import functools
import platform
import sys


_VERSIONED = ("jax", "jaxlib", "optax", "flax", "numpy", "eoslab")


def _version_of(module: str) -> str | None:
    loaded = sys.modules.get(module)
    version = getattr(loaded, "__version__", None)
    if isinstance(version, str):
        return version
    from importlib import metadata

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        pass
    if module == "eoslab":
        import eoslab

        return getattr(eoslab, "__version__", None)
    return None


@functools.cache
def _cached_versions() -> tuple[tuple[str, str | None], ...]:
    out = [("python", platform.python_version())]
    out += [(m, _version_of(m)) for m in _VERSIONED]
    return tuple(out)


def software_versions() -> dict[str, str | None]:
    """Versions of python, jax, jaxlib, optax, flax, numpy and eoslab (None if missing).

    Read from the loaded module or the installed package metadata; nothing is
    imported just to learn its version.
    """
    return dict(_cached_versions())
