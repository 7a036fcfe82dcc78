"""The settings of the tuners reproduction: its methods (one recipe each), sweep, ``--quick`` and CIFAR variant.

A :class:`Method` is a step-size rule and its recipe (``configs/<recipe>.toml``):
:data:`FULL_BATCH` the full-batch comparison, :data:`STOCHASTIC` the
minibatch one, run at every batch size of :data:`BATCH_SIZES` and seed of
:data:`SEEDS`.
"""
from __future__ import annotations

import dataclasses

PAPER = "Roulet, Agarwala, Pedregosa 2023"
PAPER_CDAT = "Roulet et al. 2024"
TITLE = f"Step-size tuners and progressive sharpening ({PAPER}; CDAT: {PAPER_CDAT}): claims"


@dataclasses.dataclass(frozen=True)
class Method:
    key: str
    label: str
    recipe: str


FULL_BATCH = (
    Method("gd", "GD (constant η)", "tuners-gd"),
    Method("armijo", "Armijo", "tuners-armijo"),
    Method("polyak", "Polyak SPS_max", "tuners-polyak"),
    Method("pal", "PAL", "tuners-pal"),
    Method("cdat1", "CDAT σ=1", "tuners-cdat1"),
    Method("cdat2", "CDAT σ=2", "tuners-cdat2"),
)
STOCHASTIC = (
    Method("gd", "SGD (constant η)", "tuners-stochastic-gd"),
    Method("armijo", "Armijo", "tuners-stochastic-armijo"),
    Method("polyak", "Polyak SPS_max", "tuners-stochastic-polyak"),
)
BATCH_SIZES = (64, 256)
SEEDS = (0, 1, 2)  # the stochastic sweep: a claim about noise needs its spread

#: --quick: fewer steps of the same full-batch recipes (and step curvature off).
QUICK_OVERRIDES = ("train.steps=400", "train.eval_every=25", "probes.step_curvature=false")
#: The CIFAR-10-5k variant (full recipe, EOSLAB_DATA set): the full-batch recipes on cifar10-5k with
#: a constant-step grid around Cohen et al.'s 2/eta range for that setting.
CIFAR_OVERRIDES = ("data.name=cifar10-5k", "train.chunk_size=1000", "train.steps=1000")
CIFAR_GD_LRS = "optimizer.lr=[0.005, 0.01, 0.02, 0.04]"
