"""The run store: one SQLite file of runs (configs, status, metric series), their identity and export.

* :mod:`~eoslab.store.runs`: :class:`RunStore` (transactions, WAL, schema) and :class:`RunRecord`;
* :mod:`~eoslab.store.hashing`: canonical JSON of a config and its hash (a run's identity);
* :mod:`~eoslab.store.versions`: the software versions stored with every run;
* :mod:`~eoslab.store.validate`: one-sentence checks of the store's arguments;
* :mod:`~eoslab.store.export`: pandas views (:func:`load_runs`, :func:`metrics_wide`) and CSV/Parquet export.
"""
from eoslab.store.export import export, load_runs, metrics_wide
from eoslab.store.hashing import canonical_json, config_hash
from eoslab.store.runs import DB_NAME, EXPORT_FORMATS, FINAL_STATUSES, SCHEMA_VERSION, STATUSES, RunRecord, RunStore
from eoslab.store.versions import software_versions

__all__ = [
    "DB_NAME",
    "EXPORT_FORMATS",
    "FINAL_STATUSES",
    "SCHEMA_VERSION",
    "STATUSES",
    "RunRecord",
    "RunStore",
    "canonical_json",
    "config_hash",
    "export",
    "load_runs",
    "metrics_wide",
    "software_versions",
]
