"""A flax + optax Adam loop on digits, monitored by eoslab (your loop, eoslab's measurements).

    python examples/flax_adam_digits.py [--steps 600] [--results results]

Every 20 steps the monitor solves for the top Hessian eigenvalue of the
training loss (certified), reads Adam's P_t from the optax state
(``optax.inject_hyperparams``, so the step size is in the state), and reports
the preconditioned sharpness lambda_1(P^{-1} H) against Adam's threshold
(2 + 2 beta1) / (1 - beta1) = 38: the edge ratio, 1 at the adaptive edge of
stability (Cohen et al. 2022).  Events (progressive sharpening, edge
reached, ...) are printed once.  The run lands in the run store of
``--results`` (default ``results``, where ``eoslab runs`` looks), so
``eoslab runs``, ``eoslab plot`` and ``eoslab report`` work on it.
"""
from __future__ import annotations

import argparse

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

import eoslab
from eoslab.data import load_dataset


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.tanh(nn.Dense(64)(x))
        x = nn.tanh(nn.Dense(64)(x))
        return nn.Dense(10)(x)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--results", default="results", help="results directory (its run store runs.db)")
    args = ap.parse_args(argv)

    data = load_dataset("digits", n_train=1000, flatten=True)
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    model = MLP()
    params = model.init(jax.random.PRNGKey(0), x[:1])

    def loss_fn(p):  # MSE, 1/2 sum over outputs, mean over examples (full batch)
        return 0.5 * jnp.mean(jnp.sum((model.apply(p, x) - y) ** 2, axis=-1))

    tx = optax.inject_hyperparams(optax.adam)(learning_rate=args.lr, b1=0.9, b2=0.999)
    opt_state = tx.init(params)

    @jax.jit
    def step(p, s):
        loss, g = jax.value_and_grad(loss_fn)(p)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s, loss

    last = None
    with eoslab.Monitor(loss_fn, every=20, store=args.results, name="flax-adam-digits") as monitor:
        for t in range(1, args.steps + 1):
            params, opt_state, loss = step(params, opt_state)
            out = monitor.update(t, params, opt_state)
            if out is not None:
                last = out
                if t % 100 == 0:
                    print(f"step {t:4d}  loss {out['loss']:.4f}  sharpness {out['sharpness']:.2f}  "
                          f"lambda1(P^-1 H) {out['effective_sharpness']:.2f} / {out['threshold']:.0f}  "
                          f"edge ratio {out['edge_ratio']:.2f}")
    return {"last": last, "events": [(e.name, e.step) for e in monitor.detector.events]}


if __name__ == "__main__":
    result = main()
    print("events:", result["events"])
