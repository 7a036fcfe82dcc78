"""Curvature engine: HVPs, Lanczos eigensolvers, tracking, trace and spectral density."""
from eoslab.curvature.density import (SpectralDensity, gauss_quadrature, plot_spectral_density,
                                      spectral_density)
from eoslab.curvature.eigen import EigenResult, right_eigenvectors, sharpness, top_eigenpairs
from eoslab.curvature.lanczos import RitzPairs, Tridiag, ritz_pairs, ritz_vectors, tridiag_sym
from eoslab.curvature.operators import (FlatOperator, ValueGradHVP, flat_operator, hvp,
                                        value_grad_hvp)
from eoslab.curvature.trace import TraceEstimate, hutchinson_trace, hutchpp_trace
from eoslab.curvature.tracker import SharpnessTracker, TrackerState

__all__ = [
    "EigenResult", "FlatOperator", "RitzPairs", "SharpnessTracker", "SpectralDensity",
    "TraceEstimate", "TrackerState", "Tridiag", "ValueGradHVP", "flat_operator",
    "gauss_quadrature", "hutchinson_trace", "hutchpp_trace", "hvp", "plot_spectral_density",
    "right_eigenvectors", "ritz_pairs", "ritz_vectors", "sharpness", "spectral_density",
    "top_eigenpairs", "tridiag_sym", "value_grad_hvp",
]
