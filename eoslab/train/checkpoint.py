"""Checkpoints of a training ensemble: the whole scan carry as one ``.npz``.

The carry (params, optimizer state, tracker state, divergence flags) is
flattened to its leaves; loading unflattens them into the structure of a
freshly initialised carry, checking every shape, so a checkpoint from another
config fails loudly.  Writes go to a temporary file and are renamed into place,
so a ``kill -9`` never leaves a half-written checkpoint.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import numpy as np

from eoslab.errors import InputError


def save_checkpoint(path: str | Path, carry: Any, *, step: int, meta: dict[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    leaves = jax.tree_util.tree_leaves(carry)
    arrays = {f"leaf_{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)}
    meta_arrays = {f"meta_{k}": np.asarray(v) for k, v in meta.items()}
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, step=np.asarray(step), **arrays, **meta_arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, template: Any) -> tuple[Any, int, dict[str, np.ndarray]]:
    """(carry, step, meta) from ``path``, with ``template``'s tree structure."""
    path = Path(path)
    with np.load(path) as z:
        leaves_t, treedef = jax.tree_util.tree_flatten(template)
        leaves = []
        for i, ref in enumerate(leaves_t):
            key = f"leaf_{i}"
            if key not in z or z[key].shape != np.shape(ref):
                raise InputError(f"checkpoint {str(path)!r} does not match this config (leaf {i}); "
                                 f"delete it to start the run afresh.")
            leaves.append(jax.numpy.asarray(z[key], dtype=np.asarray(ref).dtype))
        meta = {k[5:]: z[k] for k in z.files if k.startswith("meta_")}
        return jax.tree_util.tree_unflatten(treedef, leaves), int(z["step"]), meta
