import pytest

TINY = {
    "name": "tiny",
    "data": {"name": "digits", "n_train": 200},
    "model": {"name": "fc-tanh", "widths": [32]},
    "optimizer": {"name": "gd", "lr": [0.1, 0.5]},
    "train": {"steps": 60, "eval_every": 20},
    "probes": {"sharpness_k": 1, "tol": 1e-4},
}


@pytest.fixture
def tiny():
    import copy
    return copy.deepcopy(TINY)


def write_toml(path, raw: dict) -> str:
    """A minimal TOML writer for test configs (tables of scalars and lists)."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return f'"{v}"'
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    lines = [f"{k} = {value(v)}" for k, v in raw.items() if not isinstance(v, dict)]
    for k, v in raw.items():
        if isinstance(v, dict):
            lines.append(f"[{k}]")
            lines += [f"{kk} = {value(vv)}" for kk, vv in v.items()]
    path.write_text("\n".join(lines) + "\n")
    return str(path)
