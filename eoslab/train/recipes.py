"""Where reproduction recipes (TOML configs) live: ``configs/`` in the source tree."""
from __future__ import annotations

from pathlib import Path

from eoslab.errors import ConfigError
from eoslab.train.config import RunConfig, load_config

RECIPES_DIR = Path(__file__).resolve().parent.parent / "configs"  # eoslab/configs: the repository's configs/


def recipe_path(name: str) -> Path:
    path = RECIPES_DIR / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in RECIPES_DIR.glob("*.toml")))
        raise ConfigError(f"no recipe named {name!r} in {RECIPES_DIR}; known recipes: {known}.")
    return path


def load_recipe(name: str, overrides: list[str] | None = None) -> RunConfig:
    return load_config(recipe_path(name), overrides)
