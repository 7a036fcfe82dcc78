"""The README runs as written: every Python block, the CLI tour after `make demo`, and every other command parses.

* Each ```python block is executed on its own (a fresh namespace) in a fresh directory where ``configs/`` is
  the repository's, as a reader would paste it at the repository root.
* The tour (the ```bash block after ``<!-- readme-tour -->``) is run line by line as printed, after
  ``eoslab demo --results results`` (what ``make demo`` runs once it has installed eoslab): slow.
* The other ``eoslab ...`` lines (long jobs) are parsed by the CLI's own parser, and the files they name exist.
* The ```toml blocks validate: the config as a run config, the grid as a grid spec.
"""
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)


def blocks(lang: str) -> list[str]:
    return [m.group(2) for m in FENCE.finditer(README) if m.group(1) == lang]


def tour() -> list[str]:
    marker = README.index("<!-- readme-tour -->")
    m = FENCE.search(README, marker)
    assert m.group(1) == "bash"
    return [" ".join(shlex.split(line, comments=True)) for line in m.group(2).splitlines() if line.strip()]


def _workdir(tmp_path: Path) -> Path:
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    return tmp_path


PYTHON = blocks("python")


def test_the_readme_has_its_blocks():
    assert len(PYTHON) >= 8 and len(tour()) >= 8
    assert all(line.startswith("eoslab ") for line in tour())


@pytest.mark.slow  # about 2 minutes on 2 cores, most of it compiling: with the slow tests (make test-slow, CI)
@pytest.mark.parametrize("index", range(len(PYTHON)), ids=[f"python-{i}" for i in range(len(PYTHON))])
def test_each_python_block_runs_as_written(index, tmp_path, monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    monkeypatch.chdir(_workdir(tmp_path))
    code = compile(PYTHON[index], f"README.md python block {index}", "exec")
    exec(code, {"__name__": "__readme__"})


def test_every_other_command_parses_and_names_existing_files():
    from eoslab.cli import _parser
    lines = [shlex.split(line, comments=True) for block in blocks("bash") for line in block.splitlines()]
    commands = [args[1:] for args in lines if args and args[0] == "eoslab"]
    assert len(commands) >= 15
    for args in commands:
        _parser().parse_args(args)  # SystemExit(2) on an unknown flag
        for a in args:
            if a.endswith(".toml"):
                assert (ROOT / a).is_file(), a


def test_the_toml_blocks_validate(tmp_path):
    from eoslab.sweep import load_grid
    from eoslab.train import config_from_dict
    tomls = blocks("toml")
    grids = [t for t in tomls if "[sweep]" in t]
    configs = [t for t in tomls if "[sweep]" not in t]
    assert grids and configs
    for text in configs:
        config_from_dict(tomllib.loads(text))
    for i, text in enumerate(grids):
        (tmp_path / f"grid{i}.toml").write_text(text)
        assert len(load_grid(tmp_path / f"grid{i}.toml").points()) > 0


@pytest.mark.slow
def test_the_cli_tour_runs_verbatim_after_the_demo(tmp_path):
    cwd = _workdir(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "EOSLAB_CACHE_DIR"}
    env["PYTHONPATH"] = str(ROOT)
    eoslab = [sys.executable, "-m", "eoslab.cli"]

    def run(args):
        proc = subprocess.run([*eoslab, *args], cwd=cwd, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, f"eoslab {' '.join(args)}:\n{proc.stderr[-2000:]}"
        return proc

    run(["demo", "--results", "results", "--no-progress"])  # make demo
    outputs = [run(shlex.split(line)[1:]) for line in tour()]
    results = cwd / "results"
    assert (results / "fig.png").is_file() and (results / "report.html").is_file()
    assert (results / "all_runs.csv").is_file() and (results / "spectral_density.png").is_file()
    assert "already stored" in outputs[6].stderr and "already stored" in outputs[7].stderr
    assert outputs[6].stdout == outputs[5].stdout
