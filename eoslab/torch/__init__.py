"""eoslab's curvature engine for PyTorch: certified top eigenpairs of the Hessian of a ``torch.func`` loss.

The API mirrors :mod:`eoslab.curvature`: ``params`` is a dict of named tensors
(``dict(model.named_parameters())``) and ``loss_fn(params)`` a scalar built
with ``torch.func.functional_call``::

    from torch.func import functional_call
    params = {k: v.detach() for k, v in model.named_parameters()}
    loss_fn = lambda p: criterion(functional_call(model, p, (x,)), y)
    res = eoslab.torch.top_eigenpairs(loss_fn, params, k=3)
    res.eigenvalues, res.errors, res.residuals, res.num_hvps, res.converged

Needs PyTorch (``pip install 'eoslab[torch]'``).  The module is named
``eoslab.torch``; inside it, ``torch`` is PyTorch.
"""
from eoslab.torch.eigen import EigenResult, top_eigenpairs
from eoslab.torch.products import flat_hvp, hvp
from eoslab.torch.monitor import Monitor
from eoslab.torch.tracker import SharpnessTracker, TrackerState

__all__ = ["EigenResult", "Monitor", "SharpnessTracker", "TrackerState", "flat_hvp", "hvp", "top_eigenpairs"]
