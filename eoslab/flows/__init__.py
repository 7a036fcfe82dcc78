"""Central flows (Cohen, Damian et al. 2024): the time-averaged trajectory of an optimizer at the edge of stability.

* :mod:`eoslab.flows.dynamics`: the optimizer as a flow sees it (P(s), the state's rate, the threshold):
  GD and RMSProp (diagonal or scalar);
* :mod:`eoslab.flows.complementarity`: the k x k semidefinite complementarity problem that fixes the
  oscillation's covariance, solved inside ``jit`` and tested against cvxpy;
* :mod:`eoslab.flows.central`: :class:`CentralFlow`, :class:`StableFlow` and :class:`DiscreteRun`, which run
  side by side from one initialisation, one unit of time per optimizer step.
"""
from eoslab.flows.central import CentralFlow, DiscreteRun, FlowPoint, StableFlow, Trajectory, third_derivatives
from eoslab.flows.complementarity import solve as solve_complementarity
from eoslab.flows.dynamics import GD, RMSProp, dynamics_for

__all__ = ["CentralFlow", "StableFlow", "DiscreteRun", "Trajectory", "FlowPoint", "third_derivatives",
           "solve_complementarity", "GD", "RMSProp", "dynamics_for"]
