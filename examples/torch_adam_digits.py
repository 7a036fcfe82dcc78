"""A PyTorch Adam loop on digits, monitored by eoslab.torch (your loop, eoslab's measurements).

    python examples/torch_adam_digits.py [--steps 300] [--results results]

The PyTorch twin of ``flax_adam_digits.py``: every 20 steps the monitor
solves for the top Hessian eigenvalue (certified, warm-started), reads Adam's
P_t from ``torch.optim.Adam``'s state (PyTorch's eps placement and bias
correction), and reports lambda_1(P^{-1} H) against Adam's threshold
(2 + 2 beta1) / (1 - beta1) = 38 (Cohen et al. 2022).  Events are printed
once; the run lands in the run store of ``--results`` (default ``results``,
where ``eoslab runs`` looks).
"""
from __future__ import annotations

import argparse

import torch
from torch.func import functional_call

import eoslab.torch as et
from eoslab.data import load_dataset


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--results", default="results", help="results directory (its run store runs.db)")
    args = ap.parse_args(argv)

    torch.manual_seed(0)
    data = load_dataset("digits", n_train=500, flatten=True)
    x, y = torch.as_tensor(data.x_train), torch.as_tensor(data.y_train)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64), torch.nn.Tanh(),
                                torch.nn.Linear(64, 10))

    def loss_fn(params):  # MSE, 1/2 sum over outputs, mean over examples (full batch)
        return 0.5 * ((functional_call(model, params, (x,)) - y) ** 2).sum(-1).mean()

    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    last = None
    with et.Monitor(model, loss_fn, optimizer=opt, every=20, store=args.results, name="torch-adam-digits") as monitor:
        for t in range(1, args.steps + 1):
            opt.zero_grad()
            loss_fn(dict(model.named_parameters())).backward()
            opt.step()
            out = monitor.update(t)
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
