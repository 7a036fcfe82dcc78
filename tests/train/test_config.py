"""Config validation: one sentence naming the key, before anything runs."""
import pytest

from eoslab.errors import ConfigError
from eoslab.train import apply_overrides, config_from_dict, load_config
from tests.train.conftest import write_toml


def test_defaults_and_lists(tiny):
    cfg = config_from_dict(tiny)
    assert cfg.lrs == (0.1, 0.5)
    assert cfg.model.widths == (32,)
    assert cfg.member(0.5).optimizer.lr == 0.5
    assert cfg.to_dict()["optimizer"]["lr"] == [0.1, 0.5]


@pytest.mark.parametrize("patch,match", [
    ({"modle": {}}, "unknown config key 'modle'"),
    ({"train": {"stepz": 3}}, "unknown config key 'train.stepz'; valid keys here are"),
    ({"model": {"name": "fc-tahn"}}, "unknown model"),
    ({"optimizer": {"lr": -0.1}}, "optimizer.lr=-0.1 must be a positive number"),
    ({"optimizer": {"lr": "fast"}}, "optimizer.lr='fast' has the wrong type"),
    ({"optimizer": {"name": "adamx"}}, "unknown update rule 'adamx'"),
    ({"optimizer": {"name": "heavy-ball", "beta": 1.0}}, "optimizer.beta=1.0 must lie in"),
    ({"optimizer": {"beta": 0.9}}, "optimizer.beta is not a hyper-parameter of rule .gd.; it takes none"),
    ({"train": {"steps": "10"}}, "train.steps='10' has the wrong type; expected an integer"),
    ({"train": {"steps": 1.5}}, "expected an integer"),
    ({"train": {"checkpoint_every": 30}}, "multiple of train.eval_every"),
    ({"data": {"name": "imagenet"}}, "unknown dataset"),
    ({"loss": {"name": "hinge"}}, "unknown loss"),
    ({"model": {"widths": [32, 0]}}, "model.widths"),
    ({"probes": {"every_step": 1}}, "expected true or false"),
    ({"probes": {"eval_max_hvps": -3}}, "probes.eval_max_hvps=-3 must be 0"),
    ({"probes": {"refresh_every": -1}}, "probes.refresh_every=-1 must be >= 0"),
    ({"probes": {"jump": 0.0}}, "probes.jump=0.0 must be > 0"),
])
def test_bad_configs_raise_one_sentence(tiny, patch, match):
    for section, values in patch.items():
        if isinstance(tiny.get(section), dict):
            tiny[section].update(values)
        else:
            tiny[section] = values
    with pytest.raises(ConfigError, match=match) as e:
        config_from_dict(tiny)
    msg = str(e.value)
    assert msg.endswith(".") and "\n" not in msg


def test_toml_file_and_overrides(tmp_path, tiny):
    path = write_toml(tmp_path / "c.toml", tiny)
    cfg = load_config(path, ["optimizer.lr=[0.2, 0.3]", "train.steps=10", "model.name=fc-relu"])
    assert cfg.lrs == (0.2, 0.3) and cfg.train.steps == 10 and cfg.model.name == "fc-relu"
    with pytest.raises(ConfigError, match="not of the form key=value"):
        apply_overrides({}, ["optimizer.lr"])


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [unclosed\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_recipes_in_configs_are_valid():
    from eoslab.train.recipes import RECIPES_DIR
    files = sorted(RECIPES_DIR.glob("*.toml"))
    assert any(p.stem == "eos" for p in files)
    for p in files:
        if p.stem in ("alignment",):  # not a training config
            continue
        load_config(p)


def test_digits_as_images_for_a_cnn(tiny):
    from eoslab.train import build_problem
    raw = dict(tiny, data=dict(tiny["data"], image=True), model={"name": "cnn-relu", "bias": False})
    prob = build_problem(config_from_dict(raw))
    assert prob.x_train.shape[1:] == (8, 8, 1)
    flat = build_problem(config_from_dict(tiny))
    import numpy as np
    np.testing.assert_array_equal(np.asarray(prob.x_train).reshape(len(prob.x_train), -1), np.asarray(flat.x_train))
    with pytest.raises(ConfigError, match="data.image"):
        config_from_dict(dict(tiny, data={"name": "cifar10", "image": True}))
