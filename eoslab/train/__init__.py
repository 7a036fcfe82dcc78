"""Training: configs, the problem (data, model, loss), the scan-based trainer, checkpoints."""
from eoslab.train.config import (DataConfig, LossConfig, ModelConfig, OptimizerConfig, ProbeConfig,
                                 RunConfig, TrainConfig, apply_overrides, config_from_dict, load_config)
from eoslab.train.loop import TrainResult, train
from eoslab.train.trainer import Carry, Trainer
from eoslab.train.objective import Problem, build_problem

__all__ = [
    "DataConfig", "LossConfig", "ModelConfig", "OptimizerConfig", "ProbeConfig", "Problem", "RunConfig",
    "Carry", "TrainConfig", "TrainResult", "Trainer", "apply_overrides", "build_problem", "config_from_dict",
    "load_config", "train",
]
