"""The package root re-exports the public API."""
import eoslab


def test_root_exports_resolve():
    for name in eoslab.__all__:
        assert getattr(eoslab, name) is not None, name
    assert eoslab.load_runs.__module__ == "eoslab.store.export"
    assert eoslab.thresholds.gd_threshold(0.1) == 20.0
