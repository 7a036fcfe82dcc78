"""Grid specs: ranges, nested tables, pseudo-keys, seeds, points and shapes, and one-sentence errors."""
import copy

import pytest

from eoslab.errors import ConfigError
from eoslab.sweep import grid_from_dict, load_grid
from eoslab.sweep.grid import shape_key
from eoslab.train import config_from_dict

BASE = {
    "data": {"name": "digits", "n_train": 128},
    "model": {"name": "fc-relu", "widths": [16]},
    "optimizer": {"name": "gd", "lr": 0.1},
    "train": {"steps": 5, "eval_every": 5},
    "probes": {"sharpness_k": 0},
}


def spec(grid=None, sweep=None, base=None):
    raw = {"sweep": {"name": "g", **(sweep or {})}, "base": copy.deepcopy(base if base is not None else BASE)}
    if grid is not None:
        raw["grid"] = grid
    return grid_from_dict(raw)


def axis(grid, key=None):
    s = spec(grid)
    return dict(s.axes)[key or s.axes[0][0]]


# ---- ranges ------------------------------------------------------------------

def test_linear_range_with_num():
    vals = axis({"optimizer.lr": {"from": 0.0, "to": 1.0, "num": 5}})
    assert vals == (0.0, 0.25, 0.5, 0.75, 1.0)


def test_log_range_gives_exact_powers_of_two():
    vals = axis({"optimizer.lr": {"from": 0.5, "to": 32, "num": 7, "spacing": "log"}})
    assert vals == tuple(2.0 ** x for x in range(-1, 6))  # exactly, not 3.999999999999999
    assert all(type(v) is float for v in vals)
    assert axis({"optimizer.lr": {"from": 1e-3, "to": 1e3, "num": 7, "spacing": "log"}}) == (
        1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)


def test_step_range_includes_its_end():
    assert axis({"optimizer.lr": {"from": 0.1, "to": 0.5, "step": 0.1}}) == (0.1, 0.2, 0.3, 0.4, 0.5)
    assert axis({"optimizer.lr": {"from": 0.1, "to": 0.55, "step": 0.1}}) == (0.1, 0.2, 0.3, 0.4, 0.5)


def test_integer_step_range_gives_ints():
    vals = axis({"train.steps": {"from": 2, "to": 9, "step": 2}})
    assert vals == (2, 4, 6, 8) and all(type(v) is int for v in vals)
    s = spec({"train.steps": {"from": 2, "to": 9, "step": 2}})
    assert [p.config.train.steps for p in s.points()] == [2, 4, 6, 8]  # valid integer config values


def test_single_value_range():
    assert axis({"optimizer.lr": {"from": 0.25, "to": 4.0, "num": 1, "spacing": "log"}}) == (0.25,)


def test_nested_tables_equal_dotted_keys():
    dotted = spec({"optimizer.lr": [0.1, 0.2], "train.steps": [3, 4]})
    nested = spec({"optimizer": {"lr": [0.1, 0.2]}, "train": {"steps": [3, 4]}})
    assert nested.axes == dotted.axes == (("optimizer.lr", (0.1, 0.2)), ("train.steps", (3, 4)))
    assert [p.key for p in nested.points()] == [p.key for p in dotted.points()]
    # a range table inside a nested table is a range, not a sub-table
    ranged = spec({"optimizer": {"lr": {"from": 0.5, "to": 2, "num": 3, "spacing": "log"}}})
    assert ranged.axes == (("optimizer.lr", (0.5, 1.0, 2.0)),)


# ---- pseudo-keys, seeds, points ----------------------------------------------

def test_depth_and_width_pseudo_keys_set_widths():
    s = spec({"model.depth": [2, 3], "model.width": [8, 32]})
    widths = [p.config.model.widths for p in s.points()]
    assert widths == [(8,), (32,), (8, 8), (32, 32)]
    assert [p.values["model.depth"] for p in s.points()] == [2, 2, 3, 3]
    assert [p.config.model.widths for p in spec({"model.depth": [1]}).points()] == [()]  # a linear model
    with pytest.raises(ConfigError, match="same run twice"):  # depth 1 has no width: two equal runs
        spec({"model.depth": [1], "model.width": [8, 32]}).points()
    # only the depth: the base width is kept; only the width: the base depth is kept
    assert [p.config.model.widths for p in spec({"model.depth": [3]}).points()] == [(16, 16)]
    base = dict(copy.deepcopy(BASE), model={"name": "fc-relu", "widths": [16, 16, 16]})
    assert [p.config.model.widths for p in spec({"model.width": [4]}, base=base).points()] == [(4, 4, 4)]
    # nested form
    assert [p.config.model.widths for p in spec({"model": {"depth": [2], "width": [5]}}).points()] == [(5,)]


def test_depth_from_a_num_range():
    s = spec({"model.depth": {"from": 2, "to": 4, "num": 3}})
    assert [p.config.model.widths for p in s.points()] == [(16,), (16, 16), (16, 16, 16)]


def test_depth_zero_is_an_error():
    with pytest.raises(ConfigError, match="model.depth"):
        spec({"model.depth": [0]}).points()


def test_seeds_as_count_list_and_default():
    assert spec({"optimizer.lr": [0.1]}, sweep={"seeds": 3}).seeds == (0, 1, 2)
    assert spec({"optimizer.lr": [0.1]}, sweep={"seeds": [7, 2]}).seeds == (7, 2)
    assert spec({"optimizer.lr": [0.1]}).seeds == (0,)
    assert spec({"optimizer.lr": [0.1]}, base=dict(copy.deepcopy(BASE), seed=5)).seeds == (5,)
    pts = spec({"optimizer.lr": [0.1]}, sweep={"seeds": [7, 2]}).points()
    assert [p.seed for p in pts] == [7, 2] and [p.config.seed for p in pts] == [7, 2]


def test_points_count_order_and_configs():
    s = spec({"optimizer.lr": [0.1, 0.2, 0.3], "train.steps": [4, 6]}, sweep={"seeds": 2, "batch_size": 5})
    pts = s.points()
    assert s.size == len(pts) == 12 and s.batch_size == 5 and s.group == "sweep:g"
    # file order of the axes, seeds innermost
    assert [(p.values["optimizer.lr"], p.values["train.steps"], p.values["seed"]) for p in pts] == [
        (lr, st, sd) for lr in (0.1, 0.2, 0.3) for st in (4, 6) for sd in (0, 1)]
    for p in pts:
        assert p.lr == p.config.optimizer.lr == p.values["optimizer.lr"]  # one scalar step size
        assert p.config.train.steps == p.values["train.steps"] and p.config.name == "g"
        assert p.config.data.n_train == 128  # the base is kept
        assert config_from_dict(p.config.to_dict()) == p.config  # a valid, complete config
    assert len({p.key for p in pts}) == 12  # every point has its own key


def test_shapes_group_points_that_differ_in_lr_and_seed_only():
    s = spec({"optimizer.lr": [0.1, 0.2], "model.width": [8, 16]}, sweep={"seeds": 2})
    pts = s.points()
    by_width = {}
    for p in pts:
        by_width.setdefault(p.config.model.widths, set()).add(p.shape)
    assert all(len(shapes) == 1 for shapes in by_width.values())  # lr and seed: one shape
    assert by_width[(8,)] != by_width[(16,)]  # another width: another shape
    assert len({p.shape for p in pts}) == 2
    assert shape_key(pts[0].config) == pts[0].shape
    # other keys separate shapes too
    other = spec({"optimizer.batch_size": [0, 32], "optimizer.lr": [0.1]}).points()
    assert other[0].shape != other[1].shape


def test_lr_units_points_share_a_shape():
    s = spec({"optimizer.lr": {"from": 0.5, "to": 4, "num": 4, "spacing": "log"}},
             base=dict(copy.deepcopy(BASE), optimizer={"name": "gd", "lr": 1.0, "lr_units": "1/lambda0"}))
    pts = s.points()
    assert [p.lr for p in pts] == [0.5, 1.0, 2.0, 4.0] and len({p.shape for p in pts}) == 1
    assert all(p.config.optimizer.lr_units == "1/lambda0" for p in pts)


def test_load_grid_reads_a_file_and_a_base_next_to_it(tmp_path):
    (tmp_path / "base.toml").write_text(
        '[data]\nname = "digits"\nn_train = 64\n[model]\nname = "fc-relu"\nwidths = [8]\n'
        '[probes]\nsharpness_k = 0\n')
    path = tmp_path / "grid.toml"
    path.write_text('[sweep]\nname = "f"\nbase = "base.toml"\nseeds = 2\n'
                    '[base]\ntrain = { steps = 3, eval_every = 3 }\n'
                    '[grid.optimizer]\nlr = { from = 0.5, to = 2, num = 3, spacing = "log" }\n')
    s = load_grid(path)
    pts = s.points()
    assert s.name == "f" and len(pts) == 6 and s.source == str(path)
    assert pts[0].config.data.n_train == 64 and pts[0].config.train.steps == 3  # base file + [base] on top
    assert [p.lr for p in pts] == [0.5, 0.5, 1.0, 1.0, 2.0, 2.0]


# ---- errors ------------------------------------------------------------------

@pytest.mark.parametrize("grid,sweep,match", [
    ({"optimizer.lrr": [0.1]}, {}, "optimizer.lrr"),
    ({"optimizer": {"lrr": [0.1]}}, {}, "optimizer.lrr"),
    ({"nosection.lr": [0.1]}, {}, "nosection"),
    ({"optimizer.lr": []}, {}, "optimizer.lr"),
    ({"optimizer.lr": {"from": 0.1, "to": 1.0, "num": 0}}, {}, "optimizer.lr"),
    ({"optimizer.lr": {"from": 1.0, "to": 0.1, "step": 0.1}}, {}, "optimizer.lr"),
    ({"optimizer.lr": {"from": 0.1, "to": 1.0}}, {}, "optimizer.lr"),
    ({"optimizer.lr": {"from": 0.1, "to": 1.0, "num": 3, "step": 0.1}}, {}, "optimizer.lr"),
    ({"optimizer.lr": {"from": 0.1, "to": 1.0, "num": 3, "count": 3}}, {}, "optimizer.lr"),
    ({"optimizer.lr": {"to": 1.0, "num": 3}}, {}, "optimizer.lr"),
    ({"optimizer.lr": {"from": 0.1, "to": 1.0, "num": -1}}, {}, "optimizer.lr"),
    ({"optimizer.lr": {"from": 0.1, "to": 1.0, "num": 2.5}}, {}, "optimizer.lr"),
    ({"optimizer.lr": {"from": 0.1, "to": 1.0, "step": 0}}, {}, "optimizer.lr"),
    ({"optimizer.lr": {"from": 0.1, "to": 1.0, "step": 0.1, "spacing": "log"}}, {}, "optimizer.lr"),
    ({"optimizer.lr": {"from": 0.0, "to": 1.0, "num": 3, "spacing": "log"}}, {}, "optimizer.lr"),
    ({"optimizer.lr": {"from": 0.1, "to": 1.0, "num": 3, "spacing": "cubic"}}, {}, "optimizer.lr"),
    ({"optimizer.lr": {"from": "a", "to": 1.0, "num": 3}}, {}, "optimizer.lr"),
    ({"optimizer.lr": 0.1}, {}, "optimizer.lr"),
    ({"optimizer.lr": [0.1, -0.2]}, {}, "optimizer.lr"),
    ({"optimizer.lr": [0.1, 0.1]}, {}, "same run twice"),
    ({"optimizer.lr": [0.1]}, {"seeds": [0, 1, 0]}, "sweep.seeds"),
    ({"optimizer.lr": [0.1]}, {"seeds": 0}, "sweep.seeds"),
    ({"optimizer.lr": [0.1]}, {"seeds": [-1]}, "sweep.seeds"),
    ({"optimizer.lr": [0.1]}, {"seeds": "3"}, "sweep.seeds"),
    ({"optimizer.lr": [0.1]}, {"batchsize": 4}, "sweep.batchsize"),
    ({"optimizer.lr": [0.1]}, {"batch_size": 0}, "sweep.batch_size"),
    ({"optimizer.lr": [0.1]}, {"name": ""}, "sweep.name"),
    ({"seed": [0, 1]}, {}, "seed"),
    ({"optimizer.lr": [0.1]}, {"base": "no-such-base.toml"}, "sweep.base"),
])
def test_bad_specs_raise_one_sentence_naming_the_key(grid, sweep, match):
    with pytest.raises(ConfigError, match=match) as info:
        spec(grid, sweep).points()
    msg = str(info.value)
    assert "\n" not in msg and msg.rstrip().endswith(".")


def test_grid_key_seed_points_to_sweep_seeds():
    with pytest.raises(ConfigError, match="sweep.seeds"):
        spec({"seed": [0, 1]})


def test_unknown_top_level_table():
    with pytest.raises(ConfigError, match="gird"):
        grid_from_dict({"sweep": {"name": "g"}, "base": BASE, "gird": {"optimizer.lr": [0.1]}})


def test_base_listing_several_step_sizes_is_an_error():
    with pytest.raises(ConfigError, match="optimizer.lr"):
        spec({"train.steps": [3]}, base=dict(copy.deepcopy(BASE), optimizer={"name": "gd", "lr": [0.1, 0.2]})).points()


def test_load_grid_missing_or_invalid_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_grid(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[sweep\nname = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_grid(bad)
    broken_base = tmp_path / "base.toml"
    broken_base.write_text("data = {\n")
    ok = tmp_path / "grid.toml"
    ok.write_text('[sweep]\nbase = "base.toml"\n[grid]\n"optimizer.lr" = [0.1]\n')
    with pytest.raises(ConfigError, match="base config"):
        load_grid(ok)
