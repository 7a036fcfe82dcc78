"""The central flow against an independent calculation: dense derivatives, numpy eigh and cvxpy, on a tiny model.

The independent side builds the Hessian and the third-derivative tensor of the loss densely (``jax.hessian``,
``jax.jacfwd``), the top eigenvectors of P^{-1/2} H P^{-1/2} with numpy, the complementarity problem's alpha and
beta from the definitions (A = U^T (2P - H) U, its rate along the flow with U fixed), solves it with cvxpy, and
takes the same explicit Euler substeps.  eoslab's flow uses Hessian-vector products, nested forward-mode third
derivatives, the warm tracker and its own solver.
"""
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eoslab.flows.central import CentralFlow, DiscreteRun, StableFlow
from eoslab.flows.dynamics import GD, Adam, HeavyBall, RMSProp

X = jax.random.normal(jax.random.PRNGKey(0), (12, 2), jnp.float64)
Y = jnp.sin(2 * X[:, :1])


def loss_flat(v):
    w1, w2 = v[:6].reshape(2, 3), v[6:].reshape(3, 1)
    return 0.5 * jnp.mean((jnp.tanh(X @ w1) @ w2 - Y) ** 2)


def loss(params):
    return loss_flat(params["v"])


def theta0():
    return jax.random.normal(jax.random.PRNGKey(3), (9,), jnp.float64) * 0.8


def cvxpy_sdcp(alpha, beta_apply, k):
    import cvxpy as cp
    Xv = cp.Variable((k, k), PSD=True)
    # the objective 1/2 <X, beta[X]> + <alpha, X>, beta PSD: written with beta's matrix on the k*k entries
    E = [np.eye(k)[:, [a]] @ np.eye(k)[[b], :] for a in range(k) for b in range(k)]
    M = np.array([[np.sum(beta_apply(0.5 * (Ea + Ea.T)) * (0.5 * (Eb + Eb.T))) for Eb in E] for Ea in E])
    M = 0.5 * (M + M.T)
    scale = np.abs(M).max()  # X is unchanged when alpha and beta are scaled together
    M, alpha = M / scale, alpha / scale
    w, V = np.linalg.eigh(M)
    root = V * np.sqrt(np.maximum(w, 0))
    x = cp.reshape(Xv, (k * k,), order="C")
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(root.T @ x) + cp.sum(cp.multiply(alpha, Xv))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Solution may be inaccurate": the status says it, below
        problem.solve(solver="CLARABEL", tol_gap_abs=1e-13, tol_gap_rel=1e-13, tol_feas=1e-13)
    assert Xv.value is not None, "cvxpy found no solution"
    if problem.status == "optimal":
        return np.asarray(Xv.value)
    # "optimal_inaccurate": Clarabel stopped short of 1e-13, and its X moves by ~1e-7 when the instance changes in
    # its last bits, which a 10-unit trajectory compared at 1e-6 cannot absorb.  The reference then takes eoslab's
    # solver's X, checked against cvxpy's at the accuracy cvxpy did reach (1e-5 of X's largest entry)
    own = own_sdcp(alpha * scale, beta_apply, k)
    np.testing.assert_allclose(own, Xv.value, rtol=0, atol=1e-5 * np.abs(own).max())
    return own


def own_sdcp(alpha, beta_apply, k):
    """eoslab's solver (tested against cvxpy separately), for instances cvxpy solves inaccurately."""
    from eoslab.flows.complementarity import smat, solve, svec
    n = k * (k + 1) // 2
    B = np.stack([np.asarray(svec(jnp.asarray(beta_apply(np.asarray(smat(jnp.eye(n)[c], k)))))) for c in range(n)], 1)
    return np.asarray(solve(jnp.asarray(alpha), jnp.asarray(0.5 * (B + B.T)), tol=1e-12).X)


def reference_flow(dyn, theta, units, k, n, sdcp=cvxpy_sdcp, refresh="substep", third_every=1):
    """The central flow by dense derivatives, numpy and cvxpy: ``units`` units of ``n`` Euler substeps.

    ``refresh="substep"``: curvature measured at every substep; ``"unit"``: at each unit's first substep, the
    slack then carried by alpha + beta[X]; ``third_every``: the third derivatives computed every that many units
    and, in between, carried to the new eigenvectors by the congruence with R = U^T P U_D.
    """
    hess = jax.jit(jax.hessian(loss_flat))
    third = jax.jit(jax.jacfwd(jax.hessian(loss_flat)))
    grad = jax.jit(jax.grad(loss_flat))
    theta = np.asarray(theta)
    s = np.asarray(dyn.flow_init(jnp.asarray(theta), grad(jnp.asarray(theta))))
    c = dyn.threshold
    out = [theta.copy()]
    dt = 1.0 / n
    D_base = U_base = None
    for t in range(units):
        for sub in range(n):
            g = np.asarray(grad(theta))
            p = np.broadcast_to(np.asarray(dyn.P(jnp.asarray(s))), theta.shape)
            if refresh == "substep" or sub == 0:
                H = np.asarray(hess(theta))
                lam, V = np.linalg.eigh(H / np.sqrt(np.outer(p, p)))
                lam, V = lam[::-1][:k], V[:, ::-1][:, :k]
                U = V / np.sqrt(p)[:, None]  # columns, U^T P U = I
                if t % third_every == 0 or refresh == "substep":
                    D_base, U_base = np.einsum("abc,bi,cj->aij", np.asarray(third(theta)), U, U), U
                R = U.T @ (p[:, None] * U_base)  # R_ac = u_a^T P u_c of the basis D was computed in
                D = np.einsum("ac,bd,ncd->nab", R, R, D_base)  # grad_theta (u_i^T H u_j): [n, k, k]
                HU = H @ U
                A = np.diag(c - lam)
            def r_second(Xm):  # 1/2 d^2 r / dg^2 [H Sigma H], Sigma = U X U^T, by central differences of r
                w_, Q = np.linalg.eigh(HU @ Xm @ HU.T)
                total = np.zeros_like(s)
                for wi, q in zip(w_, Q.T):
                    # the rules' rates are quadratic in g, so the central difference has no truncation error;
                    # its rounding error is about eps |r| / h^2 (1e-8 at h = 1e-4, too coarse over 10 units)
                    h = 1e-2
                    def f(e):
                        return np.asarray(dyn.rate(jnp.asarray(s), jnp.asarray(g + e * q), jnp.asarray(g)))
                    total += 0.5 * wi * (f(h) - 2 * f(0.0) + f(-h)) / h ** 2
                return total

            def dP(ds):
                return np.broadcast_to(np.asarray(jax.jvp(dyn.P, (jnp.asarray(s),), (jnp.asarray(ds),))[1]),
                                       theta.shape)

            def rates(Xm):  # the substep's rates: gbar = g + 1/2 grad <H, Sigma>; momentum rules move the state first
                gbar = g + 0.5 * np.einsum("aij,ij->a", D, Xm)
                ds = np.asarray(dyn.rate(jnp.asarray(s), jnp.asarray(g), jnp.asarray(gbar)))
                ds = ds + (r_second(Xm) if np.any(Xm) else 0.0)
                s_th = s + dt * ds if dyn.momentum else s
                return np.asarray(dyn.theta_rate(jnp.asarray(s_th), jnp.asarray(gbar))), ds

            def dA(dth, ds):
                return c * U.T @ (dP(ds)[:, None] * U) - np.einsum("aij,a->ij", D, dth)

            dth0, ds0 = rates(np.zeros((k, k)))
            alpha = A + dt * dA(dth0, ds0)

            def beta_apply(Xm):  # the derivative of A(t + dt) at X = 0 along Xm, by the chain rule through the rates
                gbar_x = 0.5 * np.einsum("aij,ij->a", D, Xm)
                ds_x = np.asarray(jax.jvp(lambda gb: dyn.rate(jnp.asarray(s), jnp.asarray(g), gb),
                                          (jnp.asarray(g),), (jnp.asarray(gbar_x),))[1])
                ds_x = ds_x + (r_second(Xm) if np.any(Xm) else 0.0)
                s_th, s_th_x = (s + dt * ds0, dt * ds_x) if dyn.momentum else (s, np.zeros_like(s))
                dth_x = np.asarray(jax.jvp(dyn.theta_rate, (jnp.asarray(s_th), jnp.asarray(g)),
                                           (jnp.asarray(s_th_x), jnp.asarray(gbar_x)))[1])
                return dt * dA(dth_x, ds_x)

            Xm = sdcp(alpha, beta_apply, k)
            A = alpha + beta_apply(Xm)
            dth, ds = rates(Xm)
            theta, s = theta + dt * dth, s + dt * ds
        out.append(theta.copy())
    return np.asarray(out)


@pytest.mark.parametrize("dyn,refresh,third_every", [
    pytest.param(GD(eta=0.0), "substep", 1, id="gd-substep"),
    pytest.param(GD(eta=0.0), "unit", 1, id="gd-unit"),
    pytest.param(GD(eta=0.0), "unit", 2, id="gd-unit-third-every-2", marks=pytest.mark.slow),
    pytest.param(RMSProp(eta=0.0, beta2=0.9), "substep", 1, id="rmsprop-substep"),
    pytest.param(RMSProp(eta=0.0, beta2=0.9), "unit", 1, id="rmsprop-unit", marks=pytest.mark.slow),
    pytest.param(RMSProp(eta=0.0, beta2=0.9), "unit", 2, id="rmsprop-unit-third-every-2"),
    pytest.param(HeavyBall(eta=0.0, beta=0.9), "substep", 1, id="heavy-ball-substep"),
    pytest.param(HeavyBall(eta=0.0, beta=0.9), "unit", 1, id="heavy-ball-unit", marks=pytest.mark.slow),
    pytest.param(Adam(eta=0.0, beta2=0.9, eps=0.1), "substep", 1, id="adam-substep", marks=pytest.mark.slow),
    # Adam's first unit takes 14 substeps (its bias-corrected EMAs relax at about 1/t): 13 s, with the slow tests
    pytest.param(Adam(eta=0.0, beta2=0.9, eps=0.1), "unit", 1, id="adam-unit", marks=pytest.mark.slow)])
def test_central_flow_against_dense_derivatives_numpy_and_cvxpy(dyn, refresh, third_every):
    import dataclasses
    th = theta0()
    H = np.asarray(jax.hessian(loss_flat)(th))
    p_unit = np.broadcast_to(np.asarray(dataclasses.replace(dyn, eta=1.0).P(
        dyn.flow_init(th, jax.grad(loss_flat)(th)))), th.shape)
    lam_unit = np.linalg.eigvalsh(H / np.sqrt(np.outer(p_unit, p_unit)))[-1]
    # past the edge: the flow projects at once; carrying D between units is only exercised while X > 0, which at
    # GD's 1.1 x the edge ends after the first unit, and at 1.5 x lasts from unit 4 to 10 (RMSProp: 2 to 10)
    factor, units = (1.5, 10) if third_every > 1 else (1.1, 3 if dyn.threshold == 2 else 1)
    dyn = dataclasses.replace(dyn, eta=factor * dyn.threshold / lam_unit)
    k = 2
    # Euler needs dt * (the fastest rate) <= 1/2: 4 substeps at GD's edge (lambda = 2), 5 at heavy ball's
    # (sqrt(kappa lambda) = 2.1 at lambda = 1.1 x 38), 14 at Adam's first (its bias-corrected m's rate is 1.05)
    n = max(4, math.ceil(dyn.fastest_rate(1.1 * dyn.threshold, dyn.flow_init(th, jax.grad(loss_flat)(th))) / 0.5))
    # span_tol=1: D is always carried between computations here (on this fast-moving model the eigenvectors leave
    # the span by more than the default 1e-2 in a unit, so D would be computed every unit)
    flow = CentralFlow(loss, dyn, k=k, k_max=k, tol=1e-10, sdcp_tol=1e-12, stiffness=1e9, min_substeps=n,
                       refresh=refresh, third_every=third_every, span_tol=1.0)
    got = flow.run({"v": th}, units)
    want = reference_flow(dyn, th, units, k, n, sdcp=cvxpy_sdcp if dyn.name in ("gd", "rmsprop") else own_sdcp,
                          refresh=refresh, third_every=third_every)
    np.testing.assert_allclose(np.asarray(got.thetas), want, rtol=1e-6, atol=1e-8)
    assert got.points[0].X[0, 0] > 0  # it did oscillate
    if third_every > 1:
        assert sum(p.X[0, 0] > 0 for p in got.points[1::2]) >= 3  # at the edge in units that carry D
    assert all(p.converged for p in got.points)
    npairs = k * (k + 1) // 2
    thirds = [p.third for p in got.points[:-1]]
    if refresh == "substep":
        assert thirds == [npairs * n] * units
    else:
        assert thirds == [npairs if t % third_every == 0 else 0 for t in range(units)]


def test_below_the_edge_the_central_flow_is_the_stable_flow_and_euler_is_exact_on_a_quadratic():
    A = jnp.diag(jnp.array([3.0, 1.0, 0.25]))
    quad = lambda p: 0.5 * p["v"] @ A @ p["v"]  # noqa: E731
    eta, n, units = 0.5, 4, 5  # eta * lambda_max = 1.5 < 2: never at the edge
    v0 = jnp.array([1.0, -2.0, 0.5])
    central = CentralFlow(quad, GD(eta), k=2, k_max=2, tol=1e-10, stiffness=1e9, min_substeps=n).run({"v": v0}, units)
    stable = StableFlow(quad, GD(eta), k=2, tol=1e-10, stiffness=1e9, min_substeps=n).run({"v": v0}, units)
    euler = np.linalg.matrix_power(np.eye(3) - eta * np.asarray(A) / n, n)  # one unit of n Euler substeps
    want = np.asarray([np.linalg.matrix_power(euler, t) @ np.asarray(v0) for t in range(units + 1)])
    np.testing.assert_allclose(np.asarray(central.thetas), want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.asarray(stable.thetas), want, rtol=1e-12, atol=1e-14)
    assert all(np.all(p.X == 0) for p in central.points)
    np.testing.assert_allclose(central.series("sharpness"), 1.5, rtol=1e-9)  # lambda_1(P^-1 H) = eta * 3


def test_the_discrete_runs_are_gd_heavy_ball_and_adam_as_optax_computes_them():
    import optax

    from eoslab.flows.dynamics import Adam, HeavyBall
    th = theta0()
    for dyn, tx in ((GD(0.3), optax.sgd(0.3)), (HeavyBall(0.1, 0.9), optax.sgd(0.1, momentum=0.9)),
                    (Adam(0.01, 0.9, 0.999, 1e-8), optax.adam(0.01, 0.9, 0.999, 1e-8))):
        # (RMSProp's nu starts at g_0^2 here, at 0 in optax)
        got = DiscreteRun(loss, dyn, k=1, tol=1e-8).run({"v": th}, 5)
        params, state = {"v": th}, tx.init({"v": th})
        for t in range(5):
            updates, state = tx.update(jax.grad(loss)(params), state, params)
            params = optax.apply_updates(params, updates)
            np.testing.assert_allclose(got.thetas[t + 1], params["v"], rtol=1e-10, err_msg=dyn.name)


@pytest.mark.parametrize("dyn", [GD(0.5), RMSProp(0.5, scalar=True), "heavy-ball", "adam"])
def test_each_threshold_is_the_stability_edge_of_its_iteration_on_a_quadratic(dyn):
    """Frozen P: the discrete iteration on L = lambda/2 x^2 converges at lambda(P^-1 H) = 0.99 c, diverges at 1.01 c."""
    from eoslab.flows.dynamics import Adam, HeavyBall
    if dyn == "heavy-ball":
        dyn = HeavyBall(0.5, 0.9)
    elif dyn == "adam":
        dyn = Adam(0.5, 0.9, 0.999, 0.0)
    x0 = jnp.array([1.0])
    s = dyn.flow_init(x0, jnp.array([1.0]))
    p = float(jnp.reshape(dyn.P(s), (-1,))[0])
    for ratio, grows in ((0.99, False), (1.01, True)):
        lam = ratio * dyn.threshold * p  # curvature with lambda(P^-1 H) = ratio * c
        x, v = x0, jnp.zeros(1)
        for _ in range(3000):  # the iteration with P frozen: EMA or heavy-ball momentum on top
            g = lam * x
            if isinstance(dyn, HeavyBall):
                v = dyn.beta * v + g
                x = x - dyn.eta * v
            elif isinstance(dyn, Adam):
                v = dyn.beta1 * v + (1 - dyn.beta1) * g
                x = x - v / p
            else:
                x = x - g / p
        assert (abs(float(x[0])) > 1.0) == grows, (dyn.name, ratio)


@pytest.mark.slow
def test_along_the_central_flow_the_sharpness_stays_at_the_edge():
    """GD past the edge: the discrete run oscillates around 2 in lambda(P^-1 H), the central flow stays on it."""
    th = theta0()
    lam0 = float(np.linalg.eigvalsh(np.asarray(jax.hessian(loss_flat)(th)))[-1])
    dyn = GD(2.4 / lam0)
    central = CentralFlow(loss, dyn, k=2, tol=1e-9).run({"v": th}, 30)
    lam = central.series("sharpness")
    assert math.isclose(lam[0], 2.4, rel_tol=1e-6)
    reached = int(np.argmax(lam[1:] >= 0.99 * 2.0)) + 1  # (the projection at t = 0 first lowers it)
    assert 1 <= reached < 20
    np.testing.assert_allclose(lam[reached:], 2.0, rtol=1e-2)  # once at the edge, it stays there
    discrete = DiscreteRun(loss, dyn, k=1, tol=1e-9).run({"v": th}, 30).series("sharpness")
    assert np.max(np.abs(discrete[reached:] - 2.0)) > 2 * np.max(np.abs(lam[reached:] - 2.0))
    assert np.all(central.series("predicted_loss") >= central.series("loss") - 1e-15)


def test_flow_dynamics_from_the_rules_and_their_errors():
    from eoslab.errors import ConfigError
    from eoslab.flows import dynamics_for
    assert dynamics_for("gd", 0.1) == GD(0.1)
    r = dynamics_for("rmsprop", 0.01, beta2=0.95, scalar=True)
    assert (r.beta2, r.scalar, r.eps) == (0.95, True, 1e-8)
    with pytest.raises(ConfigError, match="no central flow for rule .adagrad.; flows exist for gd, rmsprop, heavy-ball, adam"):
        dynamics_for("adagrad", 0.1)
    with pytest.raises(ConfigError, match="eta=-1 must be a positive number"):
        dynamics_for("gd", -1)
    with pytest.raises(ConfigError, match="beta2"):
        dynamics_for("rmsprop", 0.1, beta2=1.5)
    # the continuous rate relaxes nu with the discrete EMA's own rate: nu_t - nu* = beta2^t (nu_0 - nu*)
    s, g = jnp.array([4.0]), jnp.array([1.0])
    assert float(RMSProp(0.1, beta2=0.9).rate(s, g)[0]) == pytest.approx(-math.log(0.9) * (1.0 - 4.0))


def test_one_flow_object_serves_parameters_of_another_layout():
    """Compiled substeps close over the flat loss of one layout: a second layout gets its own, not the first's."""
    quad = lambda p: 0.5 * jnp.sum(jnp.arange(1.0, p["v"].size + 1) * p["v"] ** 2)  # noqa: E731
    eta, n = 0.3, 4
    flow = StableFlow(quad, GD(eta), k=1, tol=1e-10, stiffness=1e9, min_substeps=n)
    for size in (3, 2):
        v0 = jnp.ones(size)
        got = flow.run({"v": v0}, 2).thetas[-1]
        one_unit = (1 - eta * np.arange(1.0, size + 1) / n) ** n
        np.testing.assert_allclose(got, one_unit ** 2, rtol=1e-12)


def test_rotated_third_derivatives_equal_those_computed_in_the_new_basis():
    """rotate_pairs is exact at the same parameters for a basis change inside the span."""
    from eoslab.flows.central import rotate_pairs, third_derivatives
    th = theta0()
    V = jnp.asarray(np.linalg.qr(np.random.default_rng(0).normal(size=(9, 3)))[0].T)  # 3 orthonormal rows
    R = jnp.asarray(np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))[0] * np.array([1.0, -1.0, 1.0]))
    np.testing.assert_allclose(rotate_pairs(third_derivatives(loss_flat, th, V), R),
                               third_derivatives(loss_flat, th, R @ V), rtol=1e-10, atol=1e-12)


def test_third_derivatives_are_computed_again_when_an_eigenvector_leaves_their_span():
    th = theta0()
    lam0 = float(np.linalg.eigvalsh(np.asarray(jax.hessian(loss_flat)(th)))[-1])
    dyn = GD(1.5 * 2 / lam0)
    every = lambda tol: [p.third for p in CentralFlow(loss, dyn, k=2, k_max=2, tol=1e-10, third_every=4,  # noqa: E731
                                                      span_tol=tol).run({"v": th}, 6).points[:-1]]
    assert every(1.0) == [3, 0, 0, 0, 3, 0]
    assert every(0.0) == [3] * 6  # (the eigenvectors move in every unit)


def test_central_flow_options_are_checked():
    from eoslab.errors import InputError
    with pytest.raises(InputError, match="refresh='often' is not a refresh schedule; use 'unit' or 'substep'"):
        CentralFlow(loss, GD(0.1), refresh="often")
    with pytest.raises(InputError, match="third_every=0 must be a positive integer"):
        CentralFlow(loss, GD(0.1), third_every=0)
    with pytest.raises(InputError, match="and 1 with refresh='substep'"):
        CentralFlow(loss, GD(0.1), refresh="substep", third_every=2)


def _uv_model():
    from eoslab.models.toy import UVModel
    return UVModel(width=1, x=1.0, y=2.0)  # f = u v, L = 1/2 (u v - 2)^2


@pytest.mark.parametrize("refresh", ["substep", "unit"])
def test_the_uv_models_central_flow_reaches_its_closed_form_point_on_the_edge(refresh):
    """GD at eta = 2/3 on L = 1/2 (uv - 2)^2, from (0.6, 0.2): the sharpness reaches 2/eta = 3 before the minima
    (whose sharpness u^2 + v^2 >= 4), so the central flow settles where grad L + 1/2 eta X grad S = 0 with S = 3.
    By hand: u = v = a gives S = a^2 + |2a^2 - 2| = 3, so a^2 = 5/3, the residual p = -1/3, L = 1/18,
    grad L = p (a, a), grad S = (3a, 3a), hence X = 2/(9 eta) = 1/3 and L + 1/2 <H, Sigma> = 1/18 + 1/2 eta X S = 7/18.
    """
    m = _uv_model()
    flow = CentralFlow(lambda p: m.loss(p["t"]), GD(2 / 3), k=1, k_max=1, tol=1e-12, sdcp_tol=1e-13,
                       refresh=refresh)
    out = flow.run({"t": jnp.array([0.6, 0.2])}, 60)
    a = math.sqrt(5 / 3)
    np.testing.assert_allclose(out.thetas[-1], [a, a], rtol=1e-8)
    end = out.points[-1]
    assert end.X[0, 0] == pytest.approx(1 / 3, rel=1e-8)
    assert end.loss == pytest.approx(1 / 18, rel=1e-8) and end.predicted_loss == pytest.approx(7 / 18, rel=1e-8)
    assert end.eigenvalues[0] == pytest.approx(2.0, rel=1e-8)  # lambda(P^-1 H) = eta S
    assert all(p.converged for p in out.points)


def test_the_uv_models_central_flow_against_its_closed_form_sharpness_gradient():
    """k = 1, by hand: with u = sqrt(eta) v (v the unit top eigenvector), grad(u^T H u) = eta grad S (the gradient
    of the model's closed-form sharpness), A = 2 - eta S, alpha = A + dt eta^2 grad S . grad L,
    beta = dt eta^3 |grad S|^2 / 2, X = max(0, -alpha / beta), and the step dt (-eta grad L - eta^2 X grad S / 2)."""
    m = _uv_model()
    eta, n, units = 2 / 3, 4, 8
    grad_S = jax.grad(lambda t: m.sharpness(t))
    theta, want = np.array([0.6, 0.2]), []
    for _ in range(units):
        for _ in range(n):
            gl, gs, S = np.asarray(m.grad(jnp.asarray(theta))), np.asarray(grad_S(theta)), float(m.sharpness(theta))
            alpha = 2 - eta * S + eta ** 2 * (gs @ gl) / n
            X = max(0.0, -alpha / (eta ** 3 * (gs @ gs) / 2 / n))
            theta = theta + (-eta * gl - 0.5 * eta ** 2 * X * gs) / n
        want.append(theta)
    got = CentralFlow(lambda p: m.loss(p["t"]), GD(eta), k=1, k_max=1, tol=1e-12, sdcp_tol=1e-13, stiffness=1e9,
                      min_substeps=n, refresh="substep").run({"t": jnp.array([0.6, 0.2])}, units)
    np.testing.assert_allclose(np.asarray(got.thetas[1:]), np.asarray(want), rtol=1e-9)
    assert max(p.X[0, 0] for p in got.points) > 0.3  # at the edge


def test_below_the_edge_the_heavy_ball_flows_are_the_semi_implicit_euler_of_their_ode_on_a_quadratic():
    """On L = 1/2 theta^T A theta, both flows of heavy ball are dm/dt = kappa (A theta - m), dtheta/dt = -m / P
    (kappa = -ln beta, P = (1 - beta)/eta), integrated m first: per substep a fixed linear map of (theta, m).
    With many substeps they approach the ODE's exact solution expm(t J) (scipy), to first order in dt."""
    from scipy.linalg import expm
    A = np.diag([3.0, 1.0, 0.25])
    quad = lambda p: 0.5 * jnp.sum(jnp.diag(jnp.asarray(A)) * p["v"] ** 2)  # noqa: E731
    eta, beta, units = 0.5, 0.9, 5  # lambda(P^-1 H) = eta lambda / (1 - beta) <= 15 < 38: never at the edge
    dyn = HeavyBall(eta, beta)
    kappa, P = -math.log(beta), (1 - beta) / eta
    v0 = np.array([1.0, -2.0, 0.5])
    m0 = (1 - beta * kappa / (1 - beta)) * A @ v0  # the flows' start (HeavyBall.flow_init)
    I, Z = np.eye(3), np.zeros((3, 3))
    for n in (5, 400):
        dt = 1.0 / n
        to_m = np.block([[I, Z], [dt * kappa * A, (1 - dt * kappa) * I]])  # m first, from theta and m
        to_theta = np.block([[I, -dt / P * I], [Z, I]])  # then theta with the new m
        unit = np.linalg.matrix_power(to_theta @ to_m, n)
        want = np.asarray([(np.linalg.matrix_power(unit, t) @ np.r_[v0, m0])[:3] for t in range(units + 1)])
        central = CentralFlow(quad, dyn, k=2, k_max=2, tol=1e-10, stiffness=1e9, min_substeps=n).run({"v": v0},
                                                                                                 units)
        stable = StableFlow(quad, dyn, k=2, tol=1e-10, stiffness=1e9, min_substeps=n).run({"v": v0}, units)
        np.testing.assert_allclose(np.asarray(central.thetas), want, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(np.asarray(stable.thetas), want, rtol=1e-10, atol=1e-13)
        assert all(np.all(p.X == 0) for p in central.points)
    J = np.block([[Z, -I / P], [kappa * A, -kappa * I]])  # d(theta, m)/dt
    exact = (expm(units * J) @ np.r_[v0, m0])[:3]
    err = np.abs(np.asarray(stable.thetas[-1]) - exact).max()
    assert err < 2e-3 * np.abs(exact).max()  # n = 400: first order in dt = 1/400
    # and the flow rings as the iteration does: its step along the stiffest direction changes sign between units
    assert np.any(np.diff(np.sign(np.diff(np.asarray(stable.thetas)[:, 0]))) != 0)


def test_the_uv_models_heavy_ball_central_flow_reaches_the_closed_form_point_on_the_edge():
    """Heavy ball at beta = 0.9 with (2 + 2 beta)/eta = 3 on L = 1/2 (uv - 2)^2 from (0.6, 0.2): the momentum
    central flow stops where gbar = grad L + 1/2 grad <H, Sigma> = 0 on the edge, the point of GD's flow at
    2/eta = 3 (see above): u = v = sqrt(5/3), L + 1/2 <H, Sigma> = 7/18, and X = 2P/9 with P = (1 - beta)/eta
    (X = 2/(9 eta) = 2P/9 for GD, whose P = 1/eta).  It arrives with momentum and rings along the edge first."""
    m = _uv_model()
    beta = 0.9
    eta = (2 + 2 * beta) / 3
    flow = CentralFlow(lambda p: m.loss(p["t"]), HeavyBall(eta, beta), k=1, k_max=1, tol=1e-12, sdcp_tol=1e-13,
                       refresh="substep")
    out = flow.run({"t": jnp.array([0.6, 0.2])}, 320)
    a = math.sqrt(5 / 3)
    np.testing.assert_allclose(out.thetas[-1], [a, a], rtol=1e-8)
    end = out.points[-1]
    assert end.X[0, 0] == pytest.approx(2 * (1 - beta) / eta / 9, rel=1e-8)
    assert end.predicted_loss == pytest.approx(7 / 18, rel=1e-8)
    assert end.eigenvalues[0] == pytest.approx(38.0, rel=1e-8)
    assert all(p.converged for p in out.points)
    lam = np.asarray([p.eigenvalues[0] for p in out.points])
    reached = int(np.argmax(lam >= 0.99 * 38))
    assert np.ptp(np.asarray(out.thetas)[reached:reached + 40, 0]) > 0.1  # ringing along the edge
    # it crosses from 24.9 to the edge within the first unit and overshoots on arrival by Euler's error, which
    # shrinks with the substep: 1.1% at the default stiffness (4 substeps), 0.03% at a quarter of it (13)
    fine = CentralFlow(lambda p: m.loss(p["t"]), HeavyBall(eta, beta), k=1, k_max=1, tol=1e-12, sdcp_tol=1e-13,
                       refresh="substep", stiffness=0.125).run({"t": jnp.array([0.6, 0.2])}, 20)
    over = [np.max(np.asarray([p.eigenvalues[0] for p in f.points[1:]])) / 38 - 1 for f in (out, fine)]
    assert over[0] < 0.02 and over[1] < 1e-3 and over[1] < over[0] / 16


@pytest.mark.parametrize("rule", ["heavy-ball", "adam"])
def test_for_a_constant_gradient_the_momentum_flows_pass_through_every_iterate(rule):
    """L = g . theta (a constant gradient), the iteration from its own start (v = 0; Adam's m = nu = 0 with bias
    corrections) against the flows from ``flow_init``, by closed forms:

    * heavy ball: theta_t = theta_0 - P^{-1} g (t - beta (1 - beta^t)/(1 - beta)), P^{-1} = eta/(1 - beta),
      because the flow starts at m_0 = (1 - beta kappa/(1 - beta)) g;
    * Adam: theta_t = theta_0 - t eta g/(|g| + eps), because the flow keeps the bias corrections from t = 1.

    The flows agree up to the Euler substeps' error (dt = 1/2000)."""
    g = jnp.array([0.3, -1.0])
    lin = lambda p: jnp.dot(g, p["v"])  # noqa: E731
    units = 30
    t = np.arange(units + 1)[:, None]
    if rule == "heavy-ball":
        dyn = HeavyBall(0.1, 0.9)
        want = -dyn.eta / (1 - dyn.beta) * np.asarray(g) * (t - dyn.beta * (1 - dyn.beta ** t) / (1 - dyn.beta))
    else:
        dyn = Adam(0.1, 0.9, 0.99, 1e-8)
        want = -t * dyn.eta * np.asarray(g) / (np.abs(np.asarray(g)) + dyn.eps)
    discrete = DiscreteRun(lin, dyn, k=1, tol=1e-6).run({"v": jnp.zeros(2)}, units)
    np.testing.assert_allclose(np.asarray(discrete.thetas), want, rtol=1e-12, atol=1e-14)
    stable = StableFlow(lin, dyn, k=1, tol=1e-6, stiffness=1e9, min_substeps=2000).run({"v": jnp.zeros(2)}, units)
    err = np.abs(np.asarray(stable.thetas) - want).max()
    assert err < 1e-3 * np.abs(want).max()  # dt = 1/2000: the semi-implicit Euler's first-order error


@pytest.mark.slow
def test_a_flow_goes_on_from_an_earlier_trajectorys_end():
    """run(thetas[-1], more, state=traj.state) continues a trajectory (with the substep count fixed): the stable
    flow and the discrete run exactly, the central flow up to its cold eigensolve (tol 1e-10)."""
    th = theta0()
    lam0 = float(np.linalg.eigvalsh(np.asarray(jax.hessian(loss_flat)(th)))[-1])
    dyn = HeavyBall(1.2 * 38 * 0.1 / lam0, 0.9)  # past its edge: the central flow's X > 0
    fixed = dict(stiffness=1e9, min_substeps=8)  # (the substeps otherwise follow the previous unit's lambda)
    for make in (lambda: StableFlow(loss, dyn, k=1, tol=1e-10, **fixed), lambda: DiscreteRun(loss, dyn, k=1, tol=1e-10),
                 lambda: CentralFlow(loss, dyn, k=2, k_max=2, tol=1e-10, sdcp_tol=1e-12, refresh="substep", **fixed)):
        whole = make().run({"v": th}, 6)
        first = make().run({"v": th}, 3)
        rest = make().run({"v": jnp.asarray(first.thetas[-1])}, 3, state=first.state)
        np.testing.assert_allclose(np.asarray(rest.thetas), np.asarray(whole.thetas[3:]), rtol=1e-7, atol=1e-10)
        np.testing.assert_allclose(rest.state, whole.state, rtol=1e-7, atol=1e-10)
    assert any(p.X[0, 0] > 0 for p in whole.points)


def test_a_state_of_the_wrong_shape_or_not_finite_is_refused():
    from eoslab.errors import InputError
    th, dyn = theta0(), HeavyBall(0.01, 0.9)
    with pytest.raises(InputError, match=r"state has shape \(3,\), but heavy-ball's flow state .* has shape \(9,\)"):
        StableFlow(loss, dyn).run({"v": th}, 1, state=np.zeros(3))
    with pytest.raises(InputError, match="state has non-finite entries"):
        CentralFlow(loss, dyn).run({"v": th}, 1, state=np.full(9, np.nan))
