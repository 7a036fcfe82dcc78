"""Hessian-vector products of a PyTorch loss of named tensors, forward-over-reverse.

H v = d/de grad L(theta + e v) at e = 0: ``torch.func.jvp`` of ``torch.func.grad``
(one forward-mode pass over the reverse pass, about the cost of two
gradients).  Modules that forward mode does not support fall back to double
backward (``torch.autograd.grad`` of the gradient with ``grad_outputs = v``),
which gives the same H v (the Hessian is symmetric).
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


def hvp(loss_fn: Callable, params: Params, v: Params, *, mode: str = "auto") -> Params:
    """H v of ``loss_fn`` at ``params`` (dicts of tensors); ``mode``: "forward" (jvp of grad), "double"
    (double backward) or "auto" (forward, else double backward)."""
    if mode not in ("auto", "forward", "double"):
        raise ValueError(f"mode={mode!r} must be 'auto', 'forward' or 'double'.")
    if mode != "double":
        try:
            return jvp(grad(loss_fn), (params,), (v,))[1]
        except (RuntimeError, NotImplementedError):
            if mode == "forward":
                raise
    return _double_backward(loss_fn, params, v)


def flat_hvp(loss_fn: Callable, params: Params, *, mode: str = "auto") -> tuple[Callable, int]:
    """(v -> H v on flat vectors, the dimension), picking the product mode once on the first call."""
    state = {"mode": mode}

    def matvec(x: torch.Tensor) -> torch.Tensor:
        v = unflatten(x, params)
        if state["mode"] == "auto":
            try:
                out = jvp(grad(loss_fn), (params,), (v,))[1]
                state["mode"] = "forward"
            except (RuntimeError, NotImplementedError):
                state["mode"] = "double"
                out = _double_backward(loss_fn, params, v)
        else:
            out = hvp(loss_fn, params, v, mode=state["mode"])
        return flatten(out)

    return matvec, sum(t.numel() for t in params.values())
