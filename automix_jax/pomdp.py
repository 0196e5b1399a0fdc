"""POMDPs: the generic point-based solver, the `.pomdp` reader and the cascade model.

from automix_jax import pomdp

problem = pomdp.read_pomdp("Tiger.pomdp").pomdp
result = pomdp.solve(problem, num_beliefs=64)
action = pomdp.policy(result.alphas, result.actions, problem.start)
"""

from ._cascade import (
    CascadeEstimate,
    CascadePomdp,
    confidence_bins,
    estimate,
    history_beliefs,
    lambda_grid,
    sweep_tables,
)
from ._pomdp import (
    PbviResult,
    Pomdp,
    backup,
    belief_update,
    blind_lower_bound,
    policy,
    solve,
    value,
)
from ._pomdp_file import PomdpFile, parse_pomdp, read_pomdp

__all__ = [
    "CascadeEstimate",
    "CascadePomdp",
    "PbviResult",
    "Pomdp",
    "PomdpFile",
    "backup",
    "belief_update",
    "blind_lower_bound",
    "confidence_bins",
    "estimate",
    "history_beliefs",
    "lambda_grid",
    "parse_pomdp",
    "policy",
    "read_pomdp",
    "solve",
    "sweep_tables",
    "value",
]
