"""Test configuration: float64 is available (accuracy tests ask for it explicitly)."""
import jax

jax.config.update("jax_enable_x64", True)
