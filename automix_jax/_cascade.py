"""The cascade as a POMDP: estimated from train rows, solved by point-based backups.

The hidden state is the quality level of every model's answer to the query (2 levels,
correct or not, by default: L^M quality vectors), together with how far down the
cascade the query has gone. After model i runs, its verifier confidence is observed as
one of B bins. In each position the meta-verifier either answers with the current
model (reward: the quality of that answer) or escalates to the next model (reward:
-λ times the price of running, and where needed verifying, the next model). Quality
does not change while a query is routed.

The prior over quality vectors and the observation model P(bin of model i | quality
of model i's answer) (or, with `joint`, given the whole quality vector) are counted
from the train rows with additive (Laplace) smoothing, so an empty bin gets a small
probability instead of zero. The observations of different models are taken as
independent given the quality vector.

The problem has a finite horizon of M steps, and the beliefs it can reach are exactly
one per observation history: B + B^2 + ... + B^M of them. Point-based value
iteration (Pineau, Gordon & Thrun 2003) backed up at all of those points for M
sweeps is therefore exact there, and its policy is a table: escalate or not for each
observation history. A sweep over λ (vmapped) traces the cost-quality curve; λ is
chosen on train by IBC lift, like any other candidate parameter.

Shape legend:
    n queries, M models, L quality levels, Q = L^M quality vectors, B bins,
    S = M * Q + 1 states (position, quality vector; plus one terminal state),
    H histories (B + ... + B^(M-1) decision histories), Λ values of λ.
"""

from __future__ import annotations

import functools
import itertools
from typing import NamedTuple

import attrs
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ._errors import PolicyError
from ._observations import Observations
from ._policies import Policy, bin_edges, first_false
from ._pomdp import Pomdp, _backup_all, _Dynamics

ANSWER, ESCALATE = 0, 1


def confidence_bins(confidences: Float[Array, "..."], bins: int) -> Int[Array, "..."]:
    """The bin of each confidence: k where k/B <= c < (k+1)/B, and 1.0 in the last.

    The edges are the floats nearest to k/B (see `bin_edges`), so a confidence
    equal to an edge falls in the bin that starts there.
    """
    edges = jnp.asarray(bin_edges(bins))
    # floor(c * B) is the bin up to one rounding step either way; one comparison
    # with each neighbouring edge settles it (cheaper than a search per value).
    guess = jnp.clip(jnp.floor(confidences * bins), 0, bins - 1).astype(jnp.int32)
    up = (guess < bins - 1) & (confidences >= edges[jnp.minimum(guess + 1, bins)])
    guess = guess + up
    down = (guess > 0) & (confidences < edges[guess])
    return guess - down


def quality_vectors(num_models: int, levels: int) -> np.ndarray:
    """`[Q, M]` every quality vector, model 0 the most significant digit."""
    return np.array(list(itertools.product(range(levels), repeat=num_models)))


class CascadeEstimate(NamedTuple):
    """What is counted from the train rows.

    Attributes:
        prior: `[Q]` probability of each quality vector.
        observation: `[M, Q, B]` P(bin of model i's confidence | quality vector).
        level_value: `[L]` the mean score of answers at each quality level.
    """

    prior: Array
    observation: Array
    level_value: Array


def quality_levels(scores: Float[Array, "n M"], levels: int) -> Int[Array, "n M"]:
    """Level l where l/L <= score < (l+1)/L (a score of 1 is in the top level)."""
    return jnp.clip(jnp.floor(scores * levels), 0, levels - 1).astype(jnp.int32)


def estimate(
    obs: Observations,
    bins: int,
    levels: int = 2,
    smoothing: float = 1.0,
    weights: Float[Array, " n"] | None = None,
    joint: bool = False,
) -> CascadeEstimate:
    """Counts the prior and observation model from rows (pure; jit- and vmap-able).

    Args:
        obs: the train rows.
        bins: B, confidence bins.
        levels: L, quality levels per model (2: correct or not, split at 0.5).
        smoothing: added to every count (Laplace smoothing): an empty bin gets
            probability `smoothing / (rows of that state + B * smoothing)`.
        weights: `[n]` row weights (1 by default; 0 drops a row).
        joint: condition each model's confidence on the whole quality vector
            (Q * B counts per model); by default only on that model's own answer
            (L * B), which needs far fewer rows to estimate.
    """
    n, m = obs.scores.shape
    weights = jnp.ones((n,)) if weights is None else weights
    level = quality_levels(obs.scores, levels)
    radix = levels ** jnp.arange(m - 1, -1, -1)
    q_index = level @ radix  # [n]
    num_q = levels**m
    q_onehot = jax.nn.one_hot(q_index, num_q) * weights[:, None]  # [n, Q]
    prior = q_onehot.sum(0) + smoothing
    prior = prior / prior.sum()
    bin_onehot = jax.nn.one_hot(confidence_bins(obs.confidences, bins), bins)
    if joint:
        counts = jnp.einsum("nq,nmb->mqb", q_onehot, bin_onehot) + smoothing
        observation = counts / counts.sum(-1, keepdims=True)
    else:
        # P(bin of model i | level of model i's own answer), shared by every
        # quality vector with that level: L * B numbers per model instead of Q * B.
        own = jax.nn.one_hot(level, levels) * weights[:, None, None]  # [n, M, L]
        counts = jnp.einsum("nml,nmb->mlb", own, bin_onehot) + smoothing
        per_level = counts / counts.sum(-1, keepdims=True)  # [M, L, B]
        qv = jnp.asarray(quality_vectors(m, levels))  # [Q, M]
        observation = per_level[jnp.arange(m)[:, None], qv.T]  # [M, Q, B]
    # The reward of a level: the mean score of the answers there, shrunk toward the
    # level's midpoint when few answers are there (the midpoint when none are).
    level_onehot = jax.nn.one_hot(level, levels) * weights[:, None, None]
    total = jnp.einsum("nml,nm->l", level_onehot, obs.scores)
    count = level_onehot.sum((0, 1))
    midpoint = (jnp.arange(levels) + 0.5) / levels
    if levels == 2:
        midpoint = jnp.array([0.0, 1.0])  # correct or not: worth 0 or 1
    level_value = (total + smoothing * midpoint) / (count + smoothing)
    return CascadeEstimate(prior, observation, level_value)


def step_costs(costs: Float[Array, " M"], verifier_costs: Float[Array, " M"]):
    """`[M]` the price of escalating into model i: running it, and verifying it
    unless it is the last (index 0, the first model, is paid by every policy)."""
    m = costs.shape[0]
    verified = jnp.arange(m) < m - 1
    return costs + jnp.where(verified, verifier_costs, 0.0)


def build(
    est: CascadeEstimate, costs: Float[Array, " M"], verifier_costs, lam
) -> Pomdp:
    """The cascade POMDP for one λ (pure; vmap over `lam` for a sweep).

    Observation index B is "nothing new" (after answering); the first model's bin is
    part of the belief a routing starts from, not an observation of the POMDP.
    """
    m, num_q, bins = est.observation.shape
    levels = est.level_value.shape[0]
    num_s = m * num_q + 1
    terminal = num_s - 1
    qv = jnp.asarray(quality_vectors(m, levels))  # [Q, M]
    positions = jnp.repeat(jnp.arange(m), num_q)  # state -> position
    q_of = jnp.tile(jnp.arange(num_q), m)  # state -> quality vector
    answer_value = est.level_value[qv[q_of, positions]]  # [M*Q]
    # Transitions: answering ends; escalating moves one position down the cascade.
    t_answer = jnp.zeros((num_s, num_s)).at[:, terminal].set(1.0)
    nxt = jnp.where(positions < m - 1, jnp.arange(m * num_q) + num_q, terminal)
    t_escalate = jnp.zeros((num_s, num_s)).at[jnp.arange(m * num_q), nxt].set(1.0)
    t_escalate = t_escalate.at[terminal, terminal].set(1.0)
    transition = jnp.stack([t_answer, t_escalate])
    # Observations: the next model's confidence bin on arriving at its position.
    nothing = jax.nn.one_hot(bins, bins + 1)
    arrive = jnp.concatenate(
        [est.observation[positions, q_of], jnp.zeros((m * num_q, 1))], axis=1
    )
    arrive = jnp.where((positions > 0)[:, None], arrive, nothing)
    o_escalate = jnp.concatenate([arrive, nothing[None]], axis=0)
    o_answer = jnp.broadcast_to(nothing, (num_s, bins + 1))
    observation = jnp.stack([o_answer, o_escalate])
    # Rewards: the answer's quality, or -λ times the next step's price. At the last
    # position escalating is answering (there is no further model).
    price = step_costs(costs, verifier_costs)
    next_price = jnp.where(
        positions < m - 1, price[jnp.minimum(positions + 1, m - 1)], 0
    )
    r_escalate = jnp.where(positions < m - 1, -lam * next_price, answer_value)
    reward = jnp.stack(
        [
            jnp.append(answer_value, 0.0),
            jnp.append(r_escalate, 0.0),
        ]
    )
    start = jnp.zeros((num_s,)).at[:num_q].set(est.prior)
    return Pomdp(transition, observation, reward, start, 1.0)


def history_beliefs(est: CascadeEstimate) -> Float[Array, "points S"]:
    """`[B + ... + B^M + 1, S]` the belief after every observation history.

    History (o_0, ..., o_p) sits at position p with belief proportional to
    prior(q) * prod_j P(o_j | q); histories of one length are in mixed-radix order
    (o_0 most significant); the last point is the terminal state.
    """
    m, num_q, bins = est.observation.shape
    num_s = m * num_q + 1
    points = []
    joint = est.prior[None, :]  # [1, Q]
    for p in range(m):
        joint = (joint[:, None, :] * est.observation[p].T[None, :, :]).reshape(
            -1, num_q
        )
        belief = joint / jnp.maximum(joint.sum(-1, keepdims=True), 1e-30)
        full = jnp.zeros((belief.shape[0], num_s))
        points.append(full.at[:, p * num_q : (p + 1) * num_q].set(belief))
    points.append(jax.nn.one_hot(jnp.array([num_s - 1]), num_s))
    return jnp.concatenate(points, axis=0)


def num_histories(num_models: int, bins: int) -> int:
    """H: decision histories, those of length 1 .. M-1."""
    return sum(bins**p for p in range(1, num_models))


def solve_cascade(pomdp: Pomdp, beliefs: Float[Array, "K S"], bins: int, m: int):
    """Finite-horizon point-based backups, one stage (cascade position) at a time.

    As in finite-horizon PBVI, each stage keeps its own set of alpha vectors: the
    points at position p are backed up against the vectors of position p + 1 only
    (computed first, backwards from the last model, whose vectors are backed up
    against the zero terminal value). Every belief a routing can reach is a point,
    so the values there are exact; and the argmax at a point runs over B^(p+2)
    successor vectors instead of all K.

    Args:
        pomdp: the cascade POMDP (`build`).
        beliefs: `history_beliefs(est)`: histories of length 1..M, then terminal.
        bins: B.
        m: M, the number of models.

    Returns:
        `(alphas [K - 1, S], actions [K - 1])`, one per history point, in the order
        of `beliefs`.
    """
    dynamics = _Dynamics(pomdp.transition, None, None, None, None)
    observation_t = jnp.swapaxes(pomdp.observation, 1, 2)
    sizes = [bins ** (p + 1) for p in range(m)]
    starts = np.cumsum([0, *sizes])
    num_s = beliefs.shape[1]
    # After the last model nothing follows: a zero terminal value.
    successors = jnp.zeros((1, num_s), pomdp.reward.dtype)
    successor_actions = jnp.zeros((1,), jnp.int32)
    per_stage = []
    for p in reversed(range(m)):
        points = beliefs[starts[p] : starts[p + 1]]
        alphas, actions, _ = _backup_all(
            dynamics,
            observation_t,
            pomdp.reward,
            1.0,
            successors,
            successor_actions,
            points,
            False,
            pomdp.num_observations,
            points.shape[0],
        )
        per_stage.append((alphas, actions))
        successors, successor_actions = alphas, actions
    per_stage.reverse()
    alphas = jnp.concatenate([a for a, _ in per_stage])
    actions = jnp.concatenate([x for _, x in per_stage])
    return alphas, actions


def lambda_grid(num: int = 48) -> np.ndarray:
    """`[Λ]` λ values, geometric, relative to one unit of quality per unit of cost.

    Multiplied by `1 / (C_last - C_first)` when used, so that the sweep spans from
    "escalating is nearly free" to "escalating never pays" for any price scale.
    """
    return np.geomspace(1e-3, 1e2, num).astype(np.float32)


@functools.partial(jax.jit, static_argnames=("bins", "levels", "joint"))
def sweep_tables(
    obs: Observations,
    lams: Float[Array, " Λ"],
    bins: int,
    levels: int = 2,
    smoothing: float = 1.0,
    joint: bool = False,
):
    """Estimate on `obs`, solve for every λ, return `[Λ, 1 + H]` policy tables.

    Row k is `[λ_k, escalate(h) for every decision history h]`: the parameters of
    `CascadePomdp`. Also returns the POMDP value of each history's belief `[Λ, H]`.
    """
    m = obs.num_models
    est = estimate(obs, bins, levels, smoothing, joint=joint)
    costs = obs.costs.mean(0)
    scale = 1.0 / jnp.maximum(costs[-1] - costs[0], 1e-6)
    beliefs = history_beliefs(est)
    h = num_histories(m, bins)

    def one(lam):
        pomdp = build(est, costs, obs.verifier_costs, lam * scale)
        alphas, actions = solve_cascade(pomdp, beliefs, bins, m)
        values = jnp.sum(alphas * beliefs[:-1], axis=-1)
        return actions[:h], values[:h]

    actions, values = jax.vmap(one)(lams)
    table = (actions == ESCALATE).astype(jnp.float32)
    return jnp.concatenate([lams[:, None] * scale, table], axis=1), values


def history_index(bins_row: Int[Array, " M"], bins: int) -> Int[Array, " M"]:
    """`[M]` the table row of the history ending at each position.

    The last position never decides, so its row is unused.
    """
    m = bins_row.shape[0]
    offsets, index, out = 0, 0, []
    for p in range(m):
        index = index * bins + bins_row[p]
        out.append(offsets + index)
        offsets += bins ** (p + 1)
    return jnp.stack(out)


@attrs.frozen
class CascadePomdp(Policy):
    """The POMDP meta-verifier: escalate by the solved policy's history table.

    Params: `[1 + H]`, the (scaled) λ followed by 0/1 escalate flags for every
    decision history; `grid` gives the λ sweep and `expand` solves it on the rows
    being tuned on.

    Attributes:
        bins: B, confidence bins (the paper's 8).
        levels: L, quality levels per model.
        smoothing: Laplace smoothing of the counts.
        num_lambdas: Λ, the size of the λ sweep.
        lam: a fixed λ (in units of one quality point per `C_last - C_first` of
            cost) instead of the sweep.
        budget: keep only λ whose mean train cost is at most this.
        joint: condition each confidence on the whole quality vector (see
            `estimate`).
    """

    bins: int = 8
    levels: int = 2
    smoothing: float = 1.0
    num_lambdas: int = 48
    lam: float | None = None
    budget: float | None = None
    joint: bool = False
    name = "pomdp"

    def __attrs_post_init__(self):
        if self.bins < 1 or self.levels < 2 or self.smoothing <= 0:
            raise PolicyError(
                f"pomdp needs bins >= 1, levels >= 2 and smoothing > 0, got "
                f"bins={self.bins}, levels={self.levels}, smoothing={self.smoothing}"
            )

    def decide(self, params, query):
        m = query.confidences.shape[0]
        rows = history_index(confidence_bins(query.confidences, self.bins), self.bins)
        # The last position never escalates; clamp its (unused) index into range.
        table = params[1:]
        escalate = table[jnp.minimum(rows, table.shape[0] - 1)] > 0.5
        escalate = escalate.at[m - 1].set(False)
        escalate = escalate.at[0].set(escalate[0] | query.escalate)
        return first_false(escalate)

    def grid(self, bins, num_models):
        if self.levels**num_models * num_models > 4096:
            raise PolicyError(
                f"pomdp with {num_models} models and {self.levels} levels has "
                f"{self.levels**num_models * num_models + 1} states; use fewer"
            )
        if self.lam is not None:
            return np.asarray([self.lam], dtype=np.float32)
        return lambda_grid(self.num_lambdas)

    def with_bins(self, bins):
        return self if bins == self.bins else attrs.evolve(self, bins=bins)

    def expand(self, grid, obs):
        tables, _ = sweep_tables(
            obs, grid, self.bins, self.levels, self.smoothing, self.joint
        )
        return tables

    def describe(self, params):
        params = np.asarray(params)
        return {"lambda": float(params[0]), "escalate": params[1:].astype(int).tolist()}


def _from_spec(spec) -> CascadePomdp:
    """The policy a `PomdpSpec` (see `automix_jax._specs`) describes."""
    return CascadePomdp(
        bins=spec.bins,
        levels=spec.levels,
        smoothing=spec.smoothing,
        num_lambdas=spec.num_lambdas,
        lam=spec.lam,
        budget=spec.budget,
    )


def _register_spec() -> None:
    from ._specs import register_spec_family

    register_spec_family("pomdp", _from_spec)


_register_spec()
