"""eoslab against a PyTorch re-implementation of the reference approach (Cohen et al. 2021), side by side.

The reference is the approach of Cohen et al.'s public edge-of-stability code
(``gd.py`` and ``utilities.py`` of their repository), re-implemented here:

* a ``torch.nn.Sequential`` fc-tanh network (Flatten, Linear, Tanh, ...,
  Linear) with PyTorch's default initialisation, float32;
* full-batch GD: the gradient of ``0.5 * sum (f - y)^2 / n`` accumulated by
  ``backward()`` over physical batches of 1,000 examples, then
  ``torch.optim.SGD(lr=eta).step()``;
* the sharpness every 100 steps with ``scipy.sparse.linalg.eigsh`` on a
  ``LinearOperator`` whose matvec is a Hessian-vector product by double
  backward (``torch.autograd.grad`` of ``grad . v``), accumulated over the
  same physical batches, in float32 as theirs (ARPACK's single-precision
  routines, ``tol=0``).

Deviations, each in the reference's favour: batches are tensor slices, not a
``DataLoader`` (whose per-example collation the script times separately); the
loss is recorded from the gradient pass instead of two extra forward passes
over the training and test sets at every step (timed separately too); the
operator is given ``dtype=float32`` so scipy does not spend a matvec to find
it; and ``k=1, which="LA"`` (the largest algebraic eigenvalue, eoslab's
definition of sharpness) instead of their ``eigsh(op, neigs)`` call with
``which="LM"`` and usually ``--neigs 2``, which the script also runs at the
same parameters to report what it would cost.

eoslab trains the same network from the *same initial weights* (the PyTorch
init is copied into eoslab's params: Dense kernels are ``W.T``), with the
equivalent config: GD eta=0.1, evaluation every 100 steps with the
warm-started Lanczos tracker (tol 1e-3, max_hvps 20: the defaults), and also
with the tracker at every step.  Its loop is that of ``eoslab run`` minus the
run store (``Trainer.init_carry``, ``run_chunk``, ``evaluate``), after a
warm-up chunk that compiles it; one end-to-end ``eoslab.train.train()`` call
(its own init, compile and SQLite store included) is timed as well.

Cores: both frameworks run in one process pinned to ``--threads`` cores
(default 1) with ``sched_setaffinity`` before either starts (JAX has no
thread-count setting; XLA sizes its pool from the cores it may use), and
PyTorch gets ``torch.set_num_threads`` of the same number; BLAS outside them
(ARPACK's) runs one thread (``OPENBLAS_NUM_THREADS=1``, as the eoslab CLI sets
it).  One core each is the default because on a 2-core machine shared with
other jobs, PyTorch's OpenMP threads wait on each other for a busy core and a
2-thread run can be several times slower than a 1-thread one.

    cd /work/main && .venv/bin/python benchmarks/torch_reference.py [--quick] [--json PATH] [--threads N]
"""
from __future__ import annotations

import os
import sys

from _common import benchmark_parser, code_version, hvp_chain, limit_cores, threads_from_argv, write_json




THREADS = threads_from_argv(sys.argv[1:])
CORES = limit_cores(THREADS)  # before JAX, PyTorch and BLAS start their threads
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the eoslab CLI: small LAPACK calls in the eigensolver

import dataclasses  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402
from scipy.sparse.linalg import LinearOperator, eigsh  # noqa: E402

try:
    import torch
except ImportError:  # pragma: no cover
    sys.exit("PyTorch is not installed; install the benchmark extra: pip install -e '.[bench]'")

torch.set_num_threads(THREADS)
torch.set_num_interop_threads(1)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

from eoslab.data import load_dataset  # noqa: E402
from eoslab.train import Trainer, config_from_dict, train  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Config:
    widths: tuple[int, ...] = (200, 200)
    eta: float = 0.1
    steps: int = 1000
    eval_every: int = 100
    seed: int = 0
    k: int = 1  # eigenvalues per sharpness solve, both sides
    which: str = "LA"  # eigsh's which for the timed reference
    eigsh_tol: float = 0.0  # scipy's default (machine precision), as the reference
    physical_batch: int = 1000  # Cohen et al.'s default physical batch size
    tol: float = 1e-3  # eoslab probes.tol default
    max_hvps: int = 20  # eoslab probes.max_hvps default
    rounds: int = 2  # interleaved timed rounds of torch and eoslab (every 100); the fastest of each is kept
    eigsh_alternatives: tuple[tuple[int, str], ...] = ((1, "LM"), (2, "LM"))  # at the same params, timed apart
    micro_repeats: int = 20
    speed_target: float = 2.0  # eoslab >= 2x the reference's steps/s

    @staticmethod
    def quick() -> "Config":
        return Config(steps=300, rounds=1, micro_repeats=8, eigsh_alternatives=((2, "LM"),))



def eval_steps(cfg: Config) -> list[int]:
    return sorted({*range(0, cfg.steps, cfg.eval_every), cfg.steps})


# ----------------------------------------------------------------------------- the PyTorch reference


class TorchReference:
    """Full-batch GD and ARPACK sharpness as in Cohen et al.'s code (re-implemented, see module docstring)."""

    def __init__(self, data, cfg: Config):
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        layers: list[torch.nn.Module] = [torch.nn.Flatten()]
        fan_in = data.x_train.shape[1]
        for width in cfg.widths:
            layers += [torch.nn.Linear(fan_in, width), torch.nn.Tanh()]
            fan_in = width
        layers.append(torch.nn.Linear(fan_in, data.y_train.shape[1]))
        self.net = torch.nn.Sequential(*layers)
        self.params = list(self.net.parameters())
        self.dim = sum(p.numel() for p in self.params)
        self.optimizer = torch.optim.SGD(self.params, lr=cfg.eta)
        self.x, self.y = torch.from_numpy(np.asarray(data.x_train)), torch.from_numpy(np.asarray(data.y_train))
        self.x_test, self.y_test = torch.from_numpy(np.asarray(data.x_test)), torch.from_numpy(np.asarray(data.y_test))
        self.n = self.x.shape[0]
        self.matvecs = 0

    @staticmethod
    def squared_loss(outputs, targets):
        """0.5 * sum of squares (sum reduction; divided by n by the caller), Cohen et al.'s SquaredLoss."""
        return 0.5 * ((outputs - targets) ** 2).sum()

    def batches(self, x, y):
        pb = self.cfg.physical_batch
        for i in range(0, x.shape[0], pb):
            yield x[i:i + pb], y[i:i + pb]

    def step(self) -> float:
        """One full-batch GD step; returns the training loss at the parameters before it."""
        self.optimizer.zero_grad()
        total = 0.0
        for xb, yb in self.batches(self.x, self.y):
            loss = self.squared_loss(self.net(xb), yb) / self.n
            loss.backward()
            total += loss.item()
        self.optimizer.step()
        return total

    def hvp(self, v: torch.Tensor) -> torch.Tensor:
        """Hessian-vector product of the full-batch loss by double backward, accumulated over batches."""
        out = torch.zeros(self.dim, dtype=torch.float32)
        for xb, yb in self.batches(self.x, self.y):
            loss = self.squared_loss(self.net(xb), yb) / self.n
            grads = torch.autograd.grad(loss, self.params, create_graph=True)
            dot = torch.nn.utils.parameters_to_vector(grads).mul(v).sum()
            hv = torch.autograd.grad(dot, self.params)
            out += torch.nn.utils.parameters_to_vector([h.contiguous() for h in hv])
        return out

    def sharpness(self, k: int, which: str) -> tuple[np.ndarray, int]:
        """Top-k Hessian eigenvalues (descending) by ARPACK, and the matvecs spent."""
        count = [0]

        def matvec(vec):
            count[0] += 1
            return self.hvp(torch.tensor(np.ravel(vec), dtype=torch.float32)).numpy()

        op = LinearOperator((self.dim, self.dim), matvec=matvec, dtype=np.float32)
        values = eigsh(op, k, which=which, tol=self.cfg.eigsh_tol, return_eigenvectors=False)
        self.matvecs += count[0]
        return np.sort(np.asarray(values, np.float64))[::-1], count[0]

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Train and test loss and accuracy (argmax of outputs vs one-hot targets)."""
        out = {}
        for split, x, y in (("train", self.x, self.y), ("test", self.x_test, self.y_test)):
            loss = acc = 0.0
            for xb, yb in self.batches(x, y):
                f = self.net(xb)
                loss += float(self.squared_loss(f, yb)) / x.shape[0]
                acc += float((f.argmax(1) == yb.argmax(1)).float().sum()) / x.shape[0]
            out[f"{split}_loss"], out[f"{split}_accuracy"] = loss, acc
        return out

    def flat_params(self) -> np.ndarray:
        return torch.nn.utils.parameters_to_vector(self.params).detach().numpy().copy()

    def load_flat(self, vec: np.ndarray) -> None:
        torch.nn.utils.vector_to_parameters(torch.from_numpy(np.asarray(vec, np.float32)), self.params)

    def eoslab_params(self) -> dict:
        """The current weights as eoslab's fc params pytree: {dense_i: {kernel: W.T, bias: b}}."""
        linears = [m for m in self.net if isinstance(m, torch.nn.Linear)]
        return {f"dense_{i}": {"kernel": jnp.asarray(m.weight.detach().numpy().T.copy()),
                               "bias": jnp.asarray(m.bias.detach().numpy().copy())}
                for i, m in enumerate(linears)}


@dataclasses.dataclass
class Run:
    """One timed training run (either side), host copies."""
    seconds: float
    steps: int
    eval_steps: list[int]
    sharpness: np.ndarray  # (evals, k), descending
    hvps: list[int]  # per sharpness solve (evals); eoslab: plus the init's cold solve in init_hvps
    train_loss: np.ndarray  # (evals,)
    step_loss: np.ndarray  # (steps,) loss at theta_t
    params: dict[int, np.ndarray]  # eval step -> flat params (torch order)
    sharpness_seconds: float = math.nan  # torch: time inside eigsh
    init_hvps: int = 0
    step_hvps: np.ndarray | None = None  # eoslab every step: per step


def run_torch(data, cfg: Config, *, keep_params: bool = False) -> Run:
    ref = TorchReference(data, cfg)
    evals = set(eval_steps(cfg))
    sharp, hvps, train_loss, params = [], [], [], {}
    losses = np.zeros(cfg.steps)
    in_eigsh = 0.0
    t0 = time.perf_counter()
    for t in range(cfg.steps + 1):
        if t in evals:
            ev = ref.evaluate()
            s0 = time.perf_counter()
            values, count = ref.sharpness(cfg.k, cfg.which)
            in_eigsh += time.perf_counter() - s0
            sharp.append(values), hvps.append(count), train_loss.append(ev["train_loss"])
            if keep_params:
                params[t] = ref.flat_params()
        if t == cfg.steps:
            break
        losses[t] = ref.step()
    seconds = time.perf_counter() - t0
    return Run(seconds, cfg.steps, sorted(evals), np.asarray(sharp), hvps, np.asarray(train_loss), losses, params,
               sharpness_seconds=in_eigsh)


# ----------------------------------------------------------------------------- eoslab


def eoslab_config(cfg: Config, *, every_step: bool, k: int | None = None):
    return config_from_dict({
        "name": "bench-torch-reference", "seed": cfg.seed,
        "data": {"name": "digits"},
        "model": {"name": "fc-tanh", "widths": list(cfg.widths), "init": "pytorch"},
        "loss": {"name": "mse"},
        "optimizer": {"name": "gd", "lr": [cfg.eta]},
        "train": {"steps": cfg.steps, "eval_every": cfg.eval_every},
        "probes": {"sharpness_k": cfg.k if k is None else k, "every_step": every_step, "tol": cfg.tol,
                   "max_hvps": cfg.max_hvps},
    })


def torch_order(params: dict) -> np.ndarray:
    """eoslab fc params flattened in torch's parameters() order (weight [out, in], then bias, per layer)."""
    parts = []
    for i in range(len(params)):
        layer = params[f"dense_{i}"]
        parts += [np.asarray(layer["kernel"]).T.ravel(), np.asarray(layer["bias"]).ravel()]
    return np.concatenate(parts)


def run_eoslab(trainer: Trainer, params: dict, steps: int) -> Run:
    """eoslab.train.loop.run_loop without the store, from the given initial params.

    ``init_carry()`` (setup, untimed) is followed, inside the timed region, by
    the tracker's cold solve at the injected params, which a run does once.
    """
    cfg, prob = trainer.cfg, trainer.problem
    every = cfg.train.eval_every
    carry = trainer.init_carry()
    stack = lambda tree: jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (1, *jnp.shape(a))), tree)  # noqa: E731
    jax.block_until_ready(carry)
    t0 = time.perf_counter()
    sharp = trainer.probe("sharpness")
    res, state = sharp.step_tracker.init(prob.sharpness_loss, params, key=jax.random.PRNGKey(cfg.seed + 1))
    probes = tuple(stack(state) if p is sharp else s for p, s in zip(trainer.probes, carry.probes))
    carry = carry._replace(params=stack(params), probes=probes)
    ev, carry = trainer.evaluate(carry)
    evs, chunks, flat = [jax.device_get(ev)], [], {0: jax.device_get(carry.params)}
    t = 0
    while t < steps and bool(jnp.any(carry.active)):
        length = min(every - t % every, steps - t)
        carry, outs = trainer.run_chunk(carry, t, length)
        chunks.append(jax.device_get(outs))
        t += length
        ev, carry = trainer.evaluate(carry)
        evs.append(jax.device_get(ev))
        flat[t] = jax.device_get(carry.params)
    seconds = time.perf_counter() - t0
    steps_at = [0] + sorted(k for k in flat if k)
    step_loss = np.concatenate([c["loss"][0] for c in chunks]) if chunks else np.zeros(0)
    step_hvps = (np.concatenate([c["sharpness_hvps"][0] for c in chunks]).astype(int)
                 if chunks and "sharpness_hvps" in chunks[0] else None)
    names = ["sharpness"] + [f"sharpness_{j}" for j in range(2, cfg.probes.sharpness_k + 1)]
    lams = np.asarray([[e[name][0] for name in names] for e in evs], np.float64)  # [evaluations, k]
    return Run(seconds, t, steps_at, lams,
               [int(e["sharpness_hvps"][0]) for e in evs], np.asarray([float(e["train_loss"][0]) for e in evs]),
               step_loss, {s: torch_order(jax.tree_util.tree_map(lambda a: a[0], p)) for s, p in flat.items()},
               init_hvps=int(res.num_hvps), step_hvps=step_hvps)


def warm_up(trainer: Trainer, params: dict) -> float:
    t0 = time.perf_counter()
    run_eoslab(trainer, params, trainer.cfg.train.eval_every)
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------- extras


def eigsh_alternatives(data, cfg: Config, params: dict[int, np.ndarray]) -> list[dict]:
    """The reference's eigsh with other (k, which) at the same parameters: matvecs and seconds."""
    ref = TorchReference(data, cfg)
    rows = []
    for k, which in ((cfg.k, cfg.which), *cfg.eigsh_alternatives):
        counts, seconds, top = [], 0.0, []
        for t in sorted(params):
            ref.load_flat(params[t])
            t0 = time.perf_counter()
            values, count = ref.sharpness(k, which)
            seconds += time.perf_counter() - t0
            counts.append(count), top.append(float(values[0]))
        rows.append(dict(k=k, which=which, matvecs=counts, total_matvecs=sum(counts), seconds=seconds, top=top))
    return rows


def micro_timings(data, cfg: Config, trainer: Trainer, params: dict) -> dict:
    """Median ms of one gradient and one HVP on each side, and of the reference's extra per-step costs."""
    ref = TorchReference(data, cfg)
    v = torch.randn(ref.dim)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(ref.x, ref.y),
                                         batch_size=cfg.physical_batch, shuffle=False)

    def torch_grad():
        ref.optimizer.zero_grad()
        for xb, yb in ref.batches(ref.x, ref.y):
            (ref.squared_loss(ref.net(xb), yb) / ref.n).backward()

    def dataloader_pass():
        for _ in loader:
            pass

    prob = trainer.problem
    loss = prob.sharpness_loss
    flat0, _ = ravel_pytree(params)
    w = jax.random.normal(jax.random.PRNGKey(0), flat0.shape, flat0.dtype)

    jg = jax.jit(jax.value_and_grad(prob.train_loss))
    j1 = jax.jit(lambda p, w: hvp_chain(loss, p, w, 1))
    j11 = jax.jit(lambda p, w: hvp_chain(loss, p, w, 11))
    fns = {
        "torch_gradient": torch_grad,
        "torch_hvp": lambda: ref.hvp(v),
        "torch_eval_pass": ref.evaluate,  # gd.py's per-step train + test loss/accuracy
        "torch_dataloader_pass": dataloader_pass,  # gd.py's batching of the training set, once per pass
        "eoslab_gradient": lambda: jax.block_until_ready(jg(params)),
        "eoslab_lin_1hvp": lambda: jax.block_until_ready(j1(params, w)),
        "eoslab_lin_11hvp": lambda: jax.block_until_ready(j11(params, w)),
    }
    for f in fns.values():
        f()
    times = {k: [] for k in fns}
    for _ in range(cfg.micro_repeats):
        for name, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t0)
    med = {k: 1e3 * statistics.median(ts) for k, ts in times.items()}
    med["eoslab_hvp"] = (med.pop("eoslab_lin_11hvp") - med.pop("eoslab_lin_1hvp")) / 10
    return med


def end_to_end(cfg: Config) -> dict:
    """One eoslab.train.train() call: its own init, JIT compile and the SQLite run store included."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = train(eoslab_config(cfg, every_step=False), results_dir=tmp, progress=False)
        seconds = time.perf_counter() - t0
    return dict(seconds=seconds, steps=cfg.steps, status=result.status[0])


# ----------------------------------------------------------------------------- report


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b) if b else math.nan


def agreement(torch_run: Run, e100: Run, every: Run | None) -> dict:
    n = min(len(torch_run.step_loss), len(e100.step_loss))
    loss_rel = np.abs(e100.step_loss[:n] - torch_run.step_loss[:n]) / np.abs(torch_run.step_loss[:n])

    def first_above(x, level):
        hit = np.flatnonzero(x > level)
        return int(hit[0]) if hit.size else None

    points = []
    for i, t in enumerate(torch_run.eval_steps):
        tp, ep = torch_run.params[t], e100.params[t]
        p = dict(t=t, torch_loss=float(torch_run.train_loss[i]), eoslab_loss=float(e100.train_loss[i]),
                 torch_sharpness=float(torch_run.sharpness[i, 0]), eoslab_sharpness=float(e100.sharpness[i, 0]),
                 torch_matvecs=torch_run.hvps[i], eoslab_hvps=e100.hvps[i],
                 param_rel_distance=float(np.linalg.norm(tp - ep) / np.linalg.norm(tp)))
        p["loss_rel"] = rel(p["eoslab_loss"], p["torch_loss"])
        p["sharpness_rel"] = rel(p["eoslab_sharpness"], p["torch_sharpness"])
        if every is not None:
            p["every_step_sharpness"] = float(every.sharpness[i, 0])
            p["every_step_rel"] = rel(p["every_step_sharpness"], p["torch_sharpness"])
        points.append(p)
    return dict(points=points, step_loss_rel_max=float(loss_rel.max()), step_loss_rel_median=float(np.median(loss_rel)),
                first_step_loss_rel_above_1e_4=first_above(loss_rel, 1e-4),
                first_step_loss_rel_above_1e_2=first_above(loss_rel, 1e-2),
                sharpness_rel_max=max(p["sharpness_rel"] for p in points),
                every_step_rel_max=max((p["every_step_rel"] for p in points), default=None) if every else None,
                param_rel_distance_max=max(p["param_rel_distance"] for p in points))


def print_report(cfg: Config, dim: int, n_train: int, runs: dict, agree: dict, alt: list[dict], micro: dict,
                 e2e: dict, targets: dict) -> None:
    tr, e100, every = runs["torch"], runs["eoslab"], runs.get("eoslab_every_step")
    print("=" * 100)
    print("eoslab vs a PyTorch re-implementation of Cohen et al.'s reference code (full-batch GD + scipy eigsh)")
    print("=" * 100)
    print(f"model      fc-tanh, widths {list(cfg.widths)}, {dim} parameters, PyTorch default init (seed {cfg.seed}), "
          f"copied into eoslab: both train the same network; float32 on both sides")
    print(f"data/loss  digits, {n_train} training examples, full batch; mse = 0.5 sum over outputs, mean over examples")
    print(f"training   GD eta={cfg.eta} (2/eta={2 / cfg.eta:g}), {cfg.steps} steps; sharpness and train/test "
          f"loss+accuracy at steps {', '.join(map(str, eval_steps(cfg)[:3]))}, ..., {cfg.steps}")
    print(f"reference  torch {torch.__version__}: nn.Sequential, backward() over physical batches of "
          f"{cfg.physical_batch}, optim.SGD; scipy {scipy.__version__} eigsh(k={cfg.k}, which='{cfg.which}', "
          f"tol={cfg.eigsh_tol:g}) on a float32 double-backward HVP operator")
    print(f"eoslab     {code_version()}: Trainer loop (compiled chunks), warm-started Lanczos tracker tol={cfg.tol:g}, "
          f"max_hvps={cfg.max_hvps}; compile excluded (warm-up chunk first) except in the end-to-end row")
    print(f"machine    {platform.machine()}, {os.cpu_count()} cores shared with other jobs; both sides pinned to core(s) "
          f"{CORES} (--threads {THREADS}), torch.set_num_threads({THREADS}), "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}; jax {jax.__version__}; "
          f"fastest of {cfg.rounds} interleaved round(s)")
    print()
    head = (f"{'run':<58} {'steps/s':>8} {'wall s':>7} {'rounds (s)':>12} {'sharpness HVPs':>15} {'vs torch':>8}")
    print(head)
    print("-" * len(head))
    rows = [("PyTorch reference, eigsh every %d steps" % cfg.eval_every, tr, runs["torch_rounds"],
             f"{sum(tr.hvps)}"),
            ("eoslab, sharpness every %d steps" % cfg.eval_every, e100, runs["eoslab_rounds"],
             f"{e100.init_hvps}+{sum(e100.hvps)}")]
    if every is not None:
        rows.append(("eoslab, sharpness every step (tracker in the scan)", every, [every.seconds],
                     f"{every.init_hvps}+{sum(every.hvps)}+{int(every.step_hvps.sum())}"))
    for label, run, rounds, hv in rows:
        print(f"{label:<58} {run.steps / run.seconds:>8.1f} {run.seconds:>7.2f} "
              f"{' '.join(f'{s:.1f}' for s in rounds):>12} {hv:>15} {tr.seconds / run.seconds:>7.2f}x")
    print(f"{'eoslab train() end to end (own init, compile, run store)':<58} {e2e['steps'] / e2e['seconds']:>8.1f} "
          f"{e2e['seconds']:>7.2f} {'':>12} {'':>15} {tr.seconds / e2e['seconds']:>7.2f}x")
    print(f"PyTorch time in eigsh: {tr.sharpness_seconds:.2f} s of {tr.seconds:.2f} s "
          f"({len(tr.hvps)} solves, {statistics.median(tr.hvps):g} matvecs median); eoslab HVPs: init cold solve + "
          f"evaluations (+ per-step updates), median {statistics.median(e100.hvps):g} per evaluation")
    print()
    print("Same network, same steps: loss and sharpness side by side (eoslab every 100 steps; every-step column = "
          "the tracker's value at that step)")
    head = (f"{'t':>5} {'torch loss':>11} {'eoslab':>11} {'rel':>7} | {'torch lam1':>10} {'eoslab':>10} {'rel':>7} | "
            f"{'every step':>10} {'rel':>7} | {'|dtheta|/|theta|':>16} | {'matvecs':>7} {'HVPs':>4}")
    print(head)
    print("-" * len(head))
    for p in agree["points"]:
        es = (f"{p['every_step_sharpness']:>10.4f} {p['every_step_rel']:>7.1e}" if "every_step_sharpness" in p
              else f"{'-':>10} {'-':>7}")
        print(f"{p['t']:>5} {p['torch_loss']:>11.6f} {p['eoslab_loss']:>11.6f} {p['loss_rel']:>7.1e} | "
              f"{p['torch_sharpness']:>10.4f} {p['eoslab_sharpness']:>10.4f} {p['sharpness_rel']:>7.1e} | {es} | "
              f"{p['param_rel_distance']:>16.1e} | {p['torch_matvecs']:>7} {p['eoslab_hvps']:>4}")
    f4, f2 = agree["first_step_loss_rel_above_1e_4"], agree["first_step_loss_rel_above_1e_2"]
    print(f"per-step training loss (both recorded from the gradient pass at theta_t): max relative difference "
          f"{agree['step_loss_rel_max']:.1e}, median {agree['step_loss_rel_median']:.1e}; first step above 1e-4: "
          f"{f4 if f4 is not None else 'none'}, above 1e-2: {f2 if f2 is not None else 'none'}")
    print()
    print("The reference's eigsh at the same parameters (its timed run's iterates), other settings:")
    base = alt[0]
    for r in alt:
        extra = r["seconds"] - base["seconds"]
        implied = tr.seconds + extra
        print(f"  eigsh(k={r['k']}, which='{r['which']}'): {r['total_matvecs']} matvecs "
              f"(median {statistics.median(r['matvecs']):g} per solve), {r['seconds']:.2f} s; reference total would be "
              f"~{implied:.1f} s -> eoslab every {cfg.eval_every} steps {implied / e100.seconds:.2f}x faster"
              + ("  (timed run's setting)" if r is base else "")
              + ("  (Cohen et al.'s eigsh(op, neigs) with --neigs 2)" if (r["k"], r["which"]) == (2, "LM") else ""))
    print()
    print(f"One product, median of {cfg.micro_repeats} interleaved repeats at the initial params (ms):")
    print(f"  gradient over the training set: torch {micro['torch_gradient']:.2f}, eoslab {micro['eoslab_gradient']:.2f} "
          f"({micro['torch_gradient'] / micro['eoslab_gradient']:.1f}x)")
    print(f"  one HVP: torch double backward {micro['torch_hvp']:.2f}, eoslab linearised {micro['eoslab_hvp']:.2f} "
          f"({micro['torch_hvp'] / micro['eoslab_hvp']:.1f}x)")
    print(f"  not in the reference's timed loop: gd.py's train+test loss/accuracy pass at every step "
          f"{micro['torch_eval_pass']:.2f} ms/step (+{100 * micro['torch_eval_pass'] * cfg.steps / 1e3 / tr.seconds:.0f}% "
          f"of its run); a DataLoader pass over the training set {micro['torch_dataloader_pass']:.2f} ms (gd.py pays it "
          f"per gradient, per HVP and per loss evaluation)")
    print()
    print("Targets:")
    for t in targets.values():
        print(f"  [{'met' if t['met'] else 'NOT met'}] {t['what']}: {t['value']}")


def evaluate_targets(cfg: Config, runs: dict, agree: dict, e2e: dict) -> dict:
    tr, e100 = runs["torch"], runs["eoslab"]
    speed = tr.seconds / e100.seconds
    return {
        "speed": dict(what=f"eoslab (sharpness every {cfg.eval_every} steps) >= {cfg.speed_target:g}x the reference's "
                           f"steps/s, compile excluded",
                      value=f"{speed:.2f}x ({e100.steps / e100.seconds:.1f} vs {tr.steps / tr.seconds:.1f} steps/s); "
                            f"end to end with compile and store {tr.seconds / e2e['seconds']:.2f}x",
                      met=speed >= cfg.speed_target, ratio=speed),
        "agreement": dict(what="same network: sharpness at the evaluation steps agrees (relative difference <= 1e-3)",
                          value=f"max {agree['sharpness_rel_max']:.1e}; parameters drift apart by at most "
                                f"{agree['param_rel_distance_max']:.1e} (relative)",
                          met=agree["sharpness_rel_max"] <= 1e-3, max_rel=agree["sharpness_rel_max"]),
    }


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__.split("\n\n")[0], quick_help="300 steps, one round (under a minute)",
                              threads_help="cores for both frameworks (default 1; sched_setaffinity, and "
                                           "torch.set_num_threads)")
    parser.add_argument("--k", type=int, help="eigenvalues per sharpness solve on both sides (default 1)")
    parser.add_argument("--no-every-step", action="store_true", help="skip eoslab's every-step run")
    args = parser.parse_args(argv)
    cfg = Config.quick() if args.quick else Config()
    if args.k:
        cfg = dataclasses.replace(cfg, k=args.k)
    t_start = time.perf_counter()

    def log(msg):
        print(f"  [{time.perf_counter() - t_start:5.0f} s] {msg}", file=sys.stderr, flush=True)

    data = load_dataset("digits")
    init = TorchReference(data, cfg).eoslab_params()  # the reference's initial weights, as eoslab params
    trainer = Trainer(eoslab_config(cfg, every_step=False))
    n_train = int(trainer.problem.x_train.shape[0])
    dim = int(ravel_pytree(init)[0].shape[0])
    warm = warm_up(trainer, init)
    log(f"eoslab warm-up (compile): {warm:.1f} s")
    runs: dict[str, Any] = {"torch_rounds": [], "eoslab_rounds": []}
    for r in range(cfg.rounds):
        t_run = run_torch(data, cfg, keep_params=True)
        runs["torch_rounds"].append(t_run.seconds)
        if "torch" not in runs or t_run.seconds < runs["torch"].seconds:
            runs["torch"] = t_run
        log(f"round {r + 1} torch: {t_run.seconds:.1f} s")
        e_run = run_eoslab(trainer, init, cfg.steps)
        runs["eoslab_rounds"].append(e_run.seconds)
        if "eoslab" not in runs or e_run.seconds < runs["eoslab"].seconds:
            runs["eoslab"] = e_run
        log(f"round {r + 1} eoslab: {e_run.seconds:.1f} s")
    if not args.no_every_step:
        every_trainer = Trainer(eoslab_config(cfg, every_step=True))
        warm_up(every_trainer, init)
        runs["eoslab_every_step"] = run_eoslab(every_trainer, init, cfg.steps)
        log(f"eoslab every step: {runs['eoslab_every_step'].seconds:.1f} s")
    agree = agreement(runs["torch"], runs["eoslab"], runs.get("eoslab_every_step"))
    alt = eigsh_alternatives(data, cfg, runs["torch"].params)
    log("eigsh alternatives done")
    micro = micro_timings(data, cfg, trainer, init)
    log("micro-timings done")
    e2e = end_to_end(cfg)
    log(f"end to end: {e2e['seconds']:.1f} s")
    targets = evaluate_targets(cfg, runs, agree, e2e)
    print_report(cfg, dim, n_train, runs, agree, alt, micro, e2e, targets)
    elapsed = time.perf_counter() - t_start
    print(f"\n(total {elapsed:.0f} s)")
    if args.json:
        out = dict(
            benchmark="torch_reference",
            conditions=dict(model="fc-tanh", widths=list(cfg.widths), num_params=dim, dataset="digits",
                            n_train=n_train, loss="mse", dtype="float32", eta=cfg.eta, steps=cfg.steps,
                            eval_every=cfg.eval_every, cores=CORES, torch_threads=THREADS,
                            openblas_threads=os.environ.get("OPENBLAS_NUM_THREADS"), torch=torch.__version__,
                            jax=jax.__version__, scipy=scipy.__version__, machine=platform.machine(),
                            cpu_count=os.cpu_count(), eoslab=code_version()),
            config=dataclasses.asdict(cfg),
            targets=targets,
            runs={k: dataclasses.replace(v, params={}) if dataclasses.is_dataclass(v) else v  # params not written
                  for k, v in runs.items()},
            eoslab_warmup_seconds=warm,
            end_to_end=e2e,
            agreement=agree,
            eigsh_alternatives=alt,
            micro_timings_ms=micro,
            seconds=elapsed,
        )
        write_json(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
