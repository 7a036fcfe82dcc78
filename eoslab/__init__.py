"""eoslab: curvature dynamics of neural-network training in JAX.

The public API is re-exported here and imported lazily (so ``eoslab --help``
starts fast and the CLI can configure BLAS threads before numpy loads):

    eoslab.top_eigenpairs, eoslab.sharpness, eoslab.SharpnessTracker, eoslab.hvp,
    eoslab.hutchpp_trace, eoslab.spectral_density, eoslab.thresholds,
    eoslab.armijo, eoslab.polyak, eoslab.parabolic, eoslab.edge, eoslab.tuner_info,
    eoslab.line_profile, eoslab.load_config, eoslab.train, eoslab.RunStore, eoslab.load_runs, eoslab.export,
    eoslab.Monitor (your own training loop), eoslab.write_report (one HTML page of a results directory)
"""
import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "top_eigenpairs": "eoslab.curvature", "sharpness": "eoslab.curvature",
    "SharpnessTracker": "eoslab.curvature", "hvp": "eoslab.curvature",
    "value_grad_hvp": "eoslab.curvature", "hutchinson_trace": "eoslab.curvature",
    "hutchpp_trace": "eoslab.curvature", "spectral_density": "eoslab.curvature",
    "plot_spectral_density": "eoslab.curvature",
    "load_config": "eoslab.train", "config_from_dict": "eoslab.train", "train": "eoslab.train",
    "RunStore": "eoslab.store", "load_runs": "eoslab.store", "metrics_wide": "eoslab.store",
    "export": "eoslab.store", "load_dataset": "eoslab.data", "make_model": "eoslab.models",
    "armijo": "eoslab.tuners", "polyak": "eoslab.tuners", "parabolic": "eoslab.tuners", "edge": "eoslab.tuners",
    "tuner_info": "eoslab.tuners", "line_profile": "eoslab.tuners", "get_rule": "eoslab.rules",
    "Monitor": "eoslab.monitor", "EventRules": "eoslab.monitor", "write_report": "eoslab.report",
    "InputError": "eoslab.errors", "ConfigError": "eoslab.errors", "DataError": "eoslab.errors",
}
_SUBMODULES = {"curvature", "thresholds", "rules", "losses", "store", "data", "models", "train",
               "experiments", "plots", "errors", "tuners", "sweep", "probes", "monitor", "report", "flows"}

__all__ = sorted(_EXPORTS) + sorted(_SUBMODULES)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"eoslab.{name}")
    raise AttributeError(f"module 'eoslab' has no attribute {name!r}")
