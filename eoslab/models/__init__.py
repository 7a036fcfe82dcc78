"""Models: fully connected, CNN (Cohen et al. 2021), small ResNets, deep linear networks."""
from eoslab.models.base import Model, available_models, make_model
from eoslab.models.init import INITS, PARAMETERISATIONS
from eoslab.models.linear import end_to_end_matrix
from eoslab.models.activations import ACTIVATIONS

__all__ = [
    "ACTIVATIONS",
    "INITS",
    "PARAMETERISATIONS",
    "Model",
    "available_models",
    "end_to_end_matrix",
    "make_model",
]
