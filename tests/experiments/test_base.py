"""The reproduction protocol: every registered reproduction has the common signature, its recipes
exist, an executor goes only where there are sweeps, and store_in shares or opens a run store."""
import inspect

import pytest

from eoslab.errors import InputError
from eoslab.experiments.base import REPRODUCTIONS, Reproduction, get_reproduction, store_in
from eoslab.store import RunStore
from eoslab.train.recipes import recipe_path


@pytest.mark.parametrize("name", list(REPRODUCTIONS))
def test_every_reproduction_has_the_common_signature_and_its_recipes(name):
    rep = REPRODUCTIONS[name]
    params = inspect.signature(rep.load()).parameters
    first = next(iter(params.values()))
    assert first.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD  # out_dir
    for key, default in (("quick", False), ("progress", True), ("store", None)):
        assert params[key].kind is inspect.Parameter.KEYWORD_ONLY and params[key].default is default, key
    assert ("executor" in params) == rep.sweeps
    for recipe in rep.recipes:
        assert recipe_path(recipe).is_file()


def test_an_executor_without_sweeps_and_an_unknown_name_are_one_sentence(tmp_path):
    with pytest.raises(InputError, match="reproduction 'eos' runs no sweep; drop --executor."):
        get_reproduction("eos").run(tmp_path, executor=object())
    assert not any(tmp_path.iterdir())  # refused before anything ran
    with pytest.raises(InputError, match="unknown reproduction 'eoss'; choose one of eos, alignment"):
        get_reproduction("eoss")
    missing = Reproduction("ghost", "eoslab.experiments.ghost", "nobody", ())
    with pytest.raises(InputError, match="reproduction 'ghost' is not available"):
        missing.load()


def test_store_in_shares_a_given_store_and_opens_one_otherwise(tmp_path):
    with RunStore.in_dir(tmp_path / "a") as given:
        with store_in(tmp_path / "b", given) as s:
            assert s is given
        given.list_runs()  # still open
    with store_in(tmp_path / "c") as own:
        own.start_run({"x": 1}, name="r")
    with RunStore.in_dir(tmp_path / "c") as again:
        assert [r.name for r in again.list_runs()] == ["r"]
