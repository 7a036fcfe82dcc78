"""eoslab: curvature dynamics of neural-network training in JAX."""

__version__ = "0.1.0"
