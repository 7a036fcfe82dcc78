"""Layout checks of every figure the project draws."""
