# ruff: noqa: F722  (jaxtyping shape strings are not Python expressions)
"""Finite POMDPs solved by point-based value iteration, in JAX.

A POMDP is given as arrays (`Pomdp`); `solve` runs point-based value iteration
(PBVI; Pineau, Gordon & Thrun, "Point-based value iteration: An anytime algorithm for
POMDPs", IJCAI 2003): it collects a fixed set of reachable beliefs by stochastic
simulation from the start belief, then repeats point-based Bellman backups at every
belief point at once (vectorised over belief points, actions and observations, one
compiled `lax.while_loop`). The answer is a set of alpha vectors; the value of a
belief is the largest inner product with them, and the policy takes the action of the
maximising vector.

Shape legend:

- S: states (`states`, `next_states`)
- A: actions
- O: observations
- K: belief points
- N: alpha vectors (PBVI keeps one per belief point, so N = K while solving)

`solve(..., method="perseus")` runs randomised point-based backups instead (Perseus;
Spaan & Vlassis, "Perseus: Randomized point-based value iteration for POMDPs", JAIR
2005) over many beliefs collected by random walks, starting from the blind-policy
bound (one vector per action), and scores successor beliefs on their few likeliest
states when beliefs are sparse (TagAvoid: about 30 of 870 states).

Values are lower bounds on the optimal value when the discount is below one: the
alpha vectors start at a blind-policy lower bound, and every backup keeps, at each
belief point, the better of the new vector and the old best one (as in Perseus; Spaan
& Vlassis 2005), so the value at a belief point never decreases from one sweep to the
next.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ._errors import AutomixError

__all__ = [
    "Pomdp",
    "PbviResult",
    "backup",
    "belief_update",
    "blind_lower_bound",
    "blind_policy_bound",
    "policy",
    "solve",
    "value",
]


class Pomdp(eqx.Module):
    """A finite POMDP as dense arrays.

    Attributes:
        transition: `[A, S, S]`, `transition[a, s, s2]` = P(s2 | s, a); rows sum to 1.
        observation: `[A, S, O]`, `observation[a, s2, o]` = P(o | s2, a), the
            probability of observing `o` after action `a` led to state `s2`.
        reward: `[A, S]`, expected immediate reward of action `a` in state `s`.
        start: `[S]`, the initial belief.
        discount: in (0, 1]. With 1 (a finite horizon) the number of backups given
            to `solve` is the horizon.
    """

    transition: Float[Array, "actions states next_states"]
    observation: Float[Array, "actions next_states observations"]
    reward: Float[Array, "actions states"]
    start: Float[Array, " states"]
    discount: float = eqx.field(static=True)

    def __check_init__(self):
        num_actions, num_states, _ = self.transition.shape
        if self.transition.shape != (num_actions, num_states, num_states):
            raise ValueError(
                f"`transition` must be [A, S, S], got {self.transition.shape}"
            )
        if self.observation.shape[:2] != (num_actions, num_states):
            raise ValueError(
                f"`observation` must be [A={num_actions}, S={num_states}, O], got "
                f"{self.observation.shape}"
            )
        if self.reward.shape != (num_actions, num_states):
            raise ValueError(
                f"`reward` must be [A={num_actions}, S={num_states}], got "
                f"{self.reward.shape}"
            )
        if self.start.shape != (num_states,):
            raise ValueError(
                f"`start` must be [S={num_states}], got {self.start.shape}"
            )
        if not 0.0 < self.discount <= 1.0:
            raise ValueError(f"`discount` must be in (0, 1], got {self.discount}")

    @property
    def num_states(self) -> int:
        return self.transition.shape[1]

    @property
    def num_actions(self) -> int:
        return self.transition.shape[0]

    @property
    def num_observations(self) -> int:
        return self.observation.shape[2]


class PbviResult(NamedTuple):
    """What `solve` returns.

    Attributes:
        alphas: `[N, S]` alpha vectors (duplicates removed).
        actions: `[N]` the action of each alpha vector.
        beliefs: `[K, S]` the belief points the backups were made at.
        value: value of the start belief, `max(alphas @ start)`.
        iterations: number of backup sweeps run.
        converged: whether the last sweep changed no belief point's value by more
            than the tolerance.
        compile_seconds: time spent compiling (tracing and XLA).
        solve_seconds: time spent collecting beliefs and backing up, compiled.
    """

    alphas: Float[Array, "alphas states"]
    actions: Int[Array, " alphas"]
    beliefs: Float[Array, "beliefs states"]
    value: float
    iterations: int
    converged: bool
    compile_seconds: float
    solve_seconds: float


def belief_update(
    pomdp: Pomdp,
    belief: Float[Array, " states"],
    action: Int[Array, ""] | int,
    observation: Int[Array, ""] | int,
) -> Float[Array, " states"]:
    """Bayes' rule: the belief after taking `action` and seeing `observation`.

    `b2(s2) ∝ P(observation | s2, action) * sum_s T[action, s, s2] b(s)`. Pure and
    jittable; `vmap` it over beliefs, actions or observations.

    Args:
        pomdp: the problem.
        belief: `[S]` a distribution over states.
        action: scalar action index.
        observation: scalar observation index.

    Returns:
        `[S]` the posterior belief. When the observation has probability zero under
        `belief` and `action`, Bayes' rule has no answer; this returns the prior
        prediction `belief @ T[action]` instead (never NaN).
    """
    predicted = belief @ pomdp.transition[action]
    joint = predicted * pomdp.observation[action, :, observation]
    total = joint.sum()
    # Divide by a safe denominator and fall back to the prediction when the
    # observation is impossible; `where` on both sides keeps gradients NaN-free.
    safe_total = jnp.where(total > 0, total, 1.0)
    return jnp.where(total > 0, joint / safe_total, predicted)


def value(
    alphas: Float[Array, "alphas states"], belief: Float[Array, " states"]
) -> Float[Array, ""]:
    """The value of `belief`: `max_n alphas[n] @ belief`.

    Args:
        alphas: `[N, S]` alpha vectors.
        belief: `[S]` a distribution over states.

    Returns:
        Scalar value.
    """
    return jnp.max(alphas @ belief)


def policy(
    alphas: Float[Array, "alphas states"],
    actions: Int[Array, " alphas"],
    belief: Float[Array, " states"],
) -> Int[Array, ""]:
    """The greedy action at `belief`: the action of the maximising alpha vector.

    Args:
        alphas: `[N, S]` alpha vectors.
        actions: `[N]` their actions.
        belief: `[S]` a distribution over states.

    Returns:
        Scalar action index. Pure; `vmap` over beliefs.
    """
    return actions[jnp.argmax(alphas @ belief)]


def blind_lower_bound(
    pomdp: Pomdp,
) -> tuple[Float[Array, "1 states"], Int[Array, " 1"]]:
    """A single alpha vector that lower-bounds the optimal value everywhere.

    Repeating one action `a` forever earns at least `min_s R[a, s]` each step, so
    `max_a min_s R[a, s] / (1 - discount)` is a lower bound (the best blind
    policy's worst case). With discount 1 (finite horizon) the bound is the zero
    terminal value instead.

    Args:
        pomdp: the problem.

    Returns:
        `([1, S], [1])` the constant alpha vector and its action.
    """
    worst = pomdp.reward.min(axis=1)
    best_action = jnp.argmax(worst)
    if pomdp.discount < 1.0:
        level = worst[best_action] / (1.0 - pomdp.discount)
    else:
        level = jnp.zeros((), pomdp.reward.dtype)
    alpha = jnp.full((1, pomdp.num_states), level, pomdp.reward.dtype)
    return alpha, best_action.astype(jnp.int32)[None]


def blind_policy_bound(
    pomdp: Pomdp, *, iterations: int | None = None
) -> tuple[Float[Array, "actions states"], Int[Array, " actions"]]:
    """One alpha vector per action: the value of repeating that action forever.

    The blind policy "always take `a`" has the value `alpha_a = R[a] + discount *
    T[a] @ alpha_a` in every state, whatever is observed, so `max_a alpha_a @ b` is
    a lower bound at every belief `b` (Hauskrecht 2000, "Value-function
    approximations for partially observable Markov decision processes"). It is
    much tighter than `blind_lower_bound` where some action is cheap in most
    states (TagAvoid: the tag action ends the game in the state where it works).

    The fixed point is approached by value iteration from `blind_lower_bound`'s
    worst case `min_s R[a, s] / (1 - discount)`, which lies below `alpha_a`; the
    backup is monotone, so every iterate stays below `alpha_a` and is itself a
    sound bound, however few iterations run.

    Args:
        pomdp: the problem; `discount` must be below 1.
        iterations: value-iteration steps; `None` runs enough for the error of
            the starting guess to shrink by 1e-6.

    Returns:
        `([A, S], [A])` the vectors and their actions `0 .. A - 1`.

    Raises:
        AutomixError: when `pomdp.discount` is 1 (a blind policy has no finite
            value then).
    """
    if pomdp.discount >= 1.0:
        raise AutomixError(
            "`blind_policy_bound` needs discount < 1, got "
            f"{pomdp.discount}; use a zero terminal value for finite horizons"
        )
    dynamics = _dynamics(np.asarray(pomdp.transition), None)
    steps = _blind_steps(pomdp.discount) if iterations is None else iterations
    alphas = _blind_policy(dynamics, pomdp.reward, pomdp.discount, steps)
    return alphas, jnp.arange(pomdp.num_actions, dtype=jnp.int32)


def _blind_steps(discount: float) -> int:
    """Iterations for `discount ** n` to fall below 1e-6."""
    return max(1, math.ceil(math.log(1e-6) / math.log(discount)))


@eqx.filter_jit
def _blind_policy(
    dynamics: _Dynamics,
    reward: Float[Array, "A S"],
    discount: float,
    iterations: int,
) -> Float[Array, "A S"]:
    """`iterations` steps of `alpha <- R + discount * T alpha`, all actions at once."""
    # Start at each action's worst case, a constant vector below its fixed point.
    start = jnp.broadcast_to(
        reward.min(axis=1, keepdims=True) / (1.0 - discount), reward.shape
    )

    def step(_, alphas):
        return reward + discount * dynamics.pullback(alphas)

    return jax.lax.fori_loop(0, iterations, step, start)


# ---------------------------------------------------------------------------
# Transition operators, dense or sparse.


class _Dynamics(eqx.Module):
    """`predict(b)[a] = b @ T[a]` and `pullback(h)[a] = T[a] @ h[a]`.

    Sparse problems (TagAvoid: about three successors per state out of 870) store
    each row's and each column's nonzeros padded to a fixed width, so both maps are
    gathers costing `A * S * width` instead of `A * S * S`.
    """

    dense: Float[Array, "actions states next_states"] | None
    row_index: Int[Array, "actions states width"] | None
    row_value: Float[Array, "actions states width"] | None
    col_index: Int[Array, "actions next_states width2"] | None
    col_value: Float[Array, "actions next_states width2"] | None

    def predict(self, belief: Float[Array, " states"]) -> Float[Array, "A S"]:
        if self.dense is not None:
            return jnp.einsum("s,ast->at", belief, self.dense)
        return jnp.sum(self.col_value * belief[self.col_index], axis=-1)

    def row(self, action: Int[Array, ""], state: Int[Array, ""]) -> Float[Array, " S"]:
        """`T[action, state]`, the successor distribution of one state."""
        if self.dense is not None:
            return self.dense[action, state]
        num_states = self.col_index.shape[1]
        empty = jnp.zeros(num_states, self.row_value.dtype)
        return empty.at[self.row_index[action, state]].add(
            self.row_value[action, state]
        )

    def pullback_one(
        self, action: Int[Array, ""], h: Float[Array, " S"]
    ) -> Float[Array, " S"]:
        """`T[action] @ h`, for one action only."""
        if self.dense is not None:
            return self.dense[action] @ h
        return jnp.sum(self.row_value[action] * h[self.row_index[action]], axis=-1)

    def pullback(self, h: Float[Array, "A S"]) -> Float[Array, "A S"]:
        if self.dense is not None:
            return jnp.einsum("ast,at->as", self.dense, h)
        gathered = jnp.take_along_axis(
            h[:, None, :], self.row_index.reshape(h.shape[0], 1, -1), axis=-1
        ).reshape(self.row_index.shape)
        return jnp.sum(self.row_value * gathered, axis=-1)


def _padded_nonzeros(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nonzeros of each row of `[A, R, C]`, padded with zero weights to one width."""
    nonzero = matrix != 0
    width = max(1, int(nonzero.sum(axis=-1).max()))
    # Stable sort puts nonzero columns first in each row; padding entries point at
    # column 0 with weight 0, so they add nothing.
    order = np.argsort(~nonzero, axis=-1, kind="stable")[..., :width]
    values = np.take_along_axis(matrix, order, axis=-1)
    return order.astype(np.int32), values


def _dynamics(transition: np.ndarray, sparse: bool | None) -> _Dynamics:
    num_states = transition.shape[1]
    width = int((transition != 0).sum(axis=-1).max())
    if sparse is None:
        sparse = num_states >= 64 and width * 8 <= num_states
    if not sparse:
        return _Dynamics(jnp.asarray(transition), None, None, None, None)
    row_index, row_value = _padded_nonzeros(transition)
    col_index, col_value = _padded_nonzeros(np.swapaxes(transition, 1, 2))
    return _Dynamics(
        None,
        jnp.asarray(row_index),
        jnp.asarray(row_value),
        jnp.asarray(col_index),
        jnp.asarray(col_value),
    )


# ---------------------------------------------------------------------------
# The point-based backup.


def _backup_one(
    dynamics: _Dynamics,
    observation_t: Float[Array, "A O S"],
    reward: Float[Array, "A S"],
    discount: float,
    alphas: Float[Array, "N S"],
    belief: Float[Array, " S"],
    fallback: Int[Array, ""],
    max_observations: int,
) -> tuple[Float[Array, " S"], Int[Array, ""], Float[Array, ""]]:
    """One point-based backup at one belief: the new alpha, its action and value."""
    num_observations = observation_t.shape[1]
    # Unnormalised successor beliefs tau[a, o] = O[a, :, o] * (b @ T[a]).
    predicted = dynamics.predict(belief)
    tau = predicted[:, None, :] * observation_t
    if max_observations < num_observations:
        # Only the most probable observations get their own argmax; every other
        # observation uses `fallback`, the vector best at the belief itself. Any
        # fixed vector gives a valid lower bound, and an observation of probability zero
        # contributes nothing, so this is exact whenever at most
        # `max_observations` observations are possible (as in Tag, where the robot
        # sees its own cell) and a sound lower bound otherwise.
        probability = tau.sum(axis=-1)
        _, kept = jax.lax.top_k(probability, max_observations)
        tau_kept = jnp.take_along_axis(tau, kept[:, :, None], axis=1)
        best = jnp.argmax(tau_kept @ alphas.T, axis=-1)
        o_kept = jnp.take_along_axis(observation_t, kept[:, :, None], axis=1)
        chosen = alphas[best] - alphas[fallback]
        # Observation rows sum to one, so sum_o O[a, s2, o] * alpha_fallback(s2)
        # is alpha_fallback(s2); the kept observations add their differences.
        future = alphas[fallback] + jnp.sum(o_kept * chosen, axis=1)
    else:
        best = jnp.argmax(tau @ alphas.T, axis=-1)
        future = jnp.sum(observation_t * alphas[best], axis=1)
    # Back through the transition: g[a, s] = sum_s2 T[a, s, s2] future[a, s2].
    candidates = reward + discount * dynamics.pullback(future)
    scores = candidates @ belief
    action = jnp.argmax(scores)
    return candidates[action], action.astype(jnp.int32), scores[action]


def _backup_sparse(
    dynamics: _Dynamics,
    observation: Float[Array, "A S O"],
    observation_t: Float[Array, "A O S"],
    reward: Float[Array, "A S"],
    discount: float,
    alphas: Float[Array, "N S"],
    alphas_t: Float[Array, "S N"],
    belief: Float[Array, " S"],
    fallback: Int[Array, ""],
    max_observations: int,
    width: int,
) -> tuple[Float[Array, " S"], Int[Array, ""], Float[Array, ""]]:
    """`_backup_one`, scoring successor beliefs on their `width` likeliest states.

    A TagAvoid belief covers about 30 of the 870 states (the robot sees its own
    cell), so the successor beliefs `tau[a, o]` are scored against the `N` vectors
    as `[A, M, W] x [A, W, N]` products over the `W = width` states of largest
    predicted mass (rows of `alphas_t`, gathered whole) instead of `[A, M, S] x
    [S, N]`. The action is chosen from those scores as well, and only the chosen
    action's vector is built at full length. When a predicted belief covers more
    than `W` states the scores only choose the plan less well: the returned vector
    is still `R[a] + discount * T[a] (sum_o O[a, :, o] * alpha_o)` for real vectors
    `alpha_o`, and its value at `belief` is computed exactly.

    Args:
        alphas_t: `[S, N]` the transpose of `alphas`, so that a state's values
            under every vector are one contiguous row.
        width: W, states kept per predicted belief.

    Returns:
        The new vector `[S]`, its action and its value at `belief`.
    """
    num_actions = reward.shape[0]
    predicted = dynamics.predict(belief)
    mass, support = jax.lax.top_k(predicted, width)
    # tau[a, w, o]: unnormalised successor beliefs on each action's support.
    tau = mass[:, :, None] * observation[jnp.arange(num_actions)[:, None], support]
    _, kept = jax.lax.top_k(tau.sum(axis=1), max_observations)
    tau_kept = jnp.take_along_axis(tau, kept[:, None, :], axis=2)
    scores = jnp.einsum("awm,awn->amn", tau_kept, alphas_t[support])
    best = jnp.argmax(scores, axis=-1)
    best_score = jnp.max(scores, axis=-1)
    # Observations outside the kept ones use `fallback`: the predicted mass scores
    # it in full, and each kept observation swaps its share for its best vector.
    fallback_on_support = alphas[fallback][support]
    fallback_total = jnp.sum(mass * fallback_on_support, axis=-1)
    fallback_kept = jnp.einsum("awm,aw->am", tau_kept, fallback_on_support)
    future_value = fallback_total + jnp.sum(best_score - fallback_kept, axis=-1)
    action = jnp.argmax(reward @ belief + discount * future_value)
    # The full vector, for the chosen action only (rows of O sum to one, so the
    # fallback carries the mass of every observation not kept).
    o_kept = observation_t[action, kept[action]]
    chosen = alphas[best[action]] - alphas[fallback]
    future = alphas[fallback] + jnp.sum(o_kept * chosen, axis=0)
    vector = reward[action] + discount * dynamics.pullback_one(action, future)
    return vector, action.astype(jnp.int32), vector @ belief


def _backup_all(
    dynamics: _Dynamics,
    observation_t: Float[Array, "A O S"],
    reward: Float[Array, "A S"],
    discount: float,
    alphas: Float[Array, "N S"],
    actions: Int[Array, " N"],
    beliefs: Float[Array, "K S"],
    monotone: bool,
    max_observations: int,
    batch_size: int,
) -> tuple[Float[Array, "K S"], Int[Array, " K"], Float[Array, ""]]:
    """Back up every belief point; return new vectors, actions and largest change."""

    old_scores = beliefs @ alphas.T
    old_best = jnp.argmax(old_scores, axis=-1)
    old_values = jnp.take_along_axis(old_scores, old_best[:, None], axis=-1)[:, 0]

    def one(point):
        belief, fallback = point
        return _backup_one(
            dynamics,
            observation_t,
            reward,
            discount,
            alphas,
            belief,
            fallback,
            max_observations,
        )

    # `lax.map` with a batch size vmaps over `batch_size` points at a time, bounding
    # the [batch, A, O, N] score intermediates instead of materialising all K.
    new_alphas, new_actions, new_values = jax.lax.map(
        one, (beliefs, old_best), batch_size=batch_size
    )
    if monotone:
        # Keep the old best vector where the backup did not improve the point, so
        # the value at every belief point is non-decreasing.
        improved = new_values >= old_values
        new_alphas = jnp.where(improved[:, None], new_alphas, alphas[old_best])
        new_actions = jnp.where(improved, new_actions, actions[old_best])
        new_values = jnp.maximum(new_values, old_values)
    change = jnp.max(jnp.abs(new_values - old_values))
    return new_alphas, new_actions, change


# Python ints and bools (sizes, flags) are static under `filter_jit`.
_backup_jit = eqx.filter_jit(_backup_all)


def backup(
    pomdp: Pomdp,
    alphas: Float[Array, "alphas states"],
    actions: Int[Array, " alphas"],
    beliefs: Float[Array, "beliefs states"],
    *,
    monotone: bool = True,
) -> tuple[Float[Array, "beliefs states"], Int[Array, " beliefs"]]:
    """One point-based Bellman backup at every belief point (Pineau et al. 2003).

    For each belief `b`, action `a` and observation `o`, picks the alpha vector best
    at the successor belief, and forms
    `alpha_a(s) = R[a, s] + discount * sum_{s2, o} T[a, s, s2] O[a, s2, o]
    alpha_{a, o}(s2)`; the new vector for `b` is the `alpha_a` best at `b`.

    Args:
        pomdp: the problem.
        alphas: `[N, S]` current alpha vectors.
        actions: `[N]` their actions.
        beliefs: `[K, S]` belief points.
        monotone: keep the old best vector at a point where the backup would lower
            its value (needed for monotone improvement of a lower bound; turn off
            for exact finite-horizon backups from a terminal value).

    Returns:
        `([K, S], [K])` one alpha vector and action per belief point.
    """
    dynamics = _Dynamics(pomdp.transition, None, None, None, None)
    new_alphas, new_actions, _ = _backup_jit(
        dynamics,
        jnp.swapaxes(pomdp.observation, 1, 2),
        pomdp.reward,
        pomdp.discount,
        alphas,
        actions,
        beliefs,
        monotone,
        pomdp.num_observations,
        max(1, beliefs.shape[0]),
    )
    return new_alphas, new_actions


class _SweepState(NamedTuple):
    """Carry of the backup loop."""

    iteration: Int[Array, ""]  # sweeps done in this call
    alphas: Float[Array, "K S"]
    actions: Int[Array, " K"]
    change: Float[Array, ""]  # largest change of a point's value in the last sweep


@eqx.filter_jit
def _sweeps(
    dynamics: _Dynamics,
    observation_t: Float[Array, "A O S"],
    reward: Float[Array, "A S"],
    discount: float,
    alphas: Float[Array, "K S"],
    actions: Int[Array, " K"],
    beliefs: Float[Array, "K S"],
    max_sweeps: Int[Array, ""],
    tolerance: Float[Array, ""],
    monotone: bool,
    max_observations: int,
    batch_size: int,
) -> _SweepState:
    """Up to `max_sweeps` backup sweeps, stopping once the change is below tolerance.

    `max_sweeps` and `tolerance` are traced, so calling again for the next slice of
    the time budget reuses the compiled loop.
    """

    def cond(state: _SweepState):
        return (state.iteration < max_sweeps) & (state.change > tolerance)

    def body(state: _SweepState):
        new_alphas, new_actions, change = _backup_all(
            dynamics,
            observation_t,
            reward,
            discount,
            state.alphas,
            state.actions,
            beliefs,
            monotone,
            max_observations,
            batch_size,
        )
        return _SweepState(state.iteration + 1, new_alphas, new_actions, change)

    init = _SweepState(
        jnp.zeros((), jnp.int32), alphas, actions, jnp.array(jnp.inf, alphas.dtype)
    )
    return jax.lax.while_loop(cond, body, init)


# ---------------------------------------------------------------------------
# Belief collection.


def _draw(probabilities: Float[Array, "... n"], uniform: Float[Array, "..."]):
    """Inverse-CDF sampling: the first index whose cumulative mass exceeds `u`."""
    # Scaling `u` by the total mass tolerates rows that sum to 1 only up to
    # rounding; the clip keeps a `u` at the very top inside the support.
    cumulative = jnp.cumsum(probabilities, axis=-1)
    target = uniform * cumulative[..., -1]
    index = jnp.sum(cumulative <= target[..., None], axis=-1)
    return jnp.minimum(index, probabilities.shape[-1] - 1)


# Squared distance under which two beliefs count as one point. Distances come from
# |x|^2 + |y|^2 - 2 x.y, which cancels catastrophically: in float32 two equal
# beliefs can be 1e-7 apart, so the threshold sits well above that noise.
_SAME_POINT = 1e-5


@eqx.filter_jit
def _expand(
    dynamics: _Dynamics,
    observation: Float[Array, "A S O"],
    beliefs: Float[Array, "K S"],
    count: Int[Array, ""],
    uniforms: Float[Array, "K A 3"],
) -> tuple[Float[Array, "K S"], Int[Array, ""]]:
    """PBVI's stochastic simulation with exploratory action (SSEA), for fixed K.

    From each of the first `count` beliefs, every action is simulated once (a state
    drawn from the belief, a successor from T, an observation from O, by the given
    uniform numbers); of the `A` successors the one farthest from the current set
    is a candidate. The candidates farthest from the set fill the free slots, up
    to doubling the set. Distances are Euclidean (a matrix product) rather than
    PBVI's L1, which would need a `[K, A, K, S]` intermediate. The uniforms come
    from NumPy: compiling JAX's counter-based generator costs seconds on CPU.
    """
    num_points, num_states = beliefs.shape
    num_actions = observation.shape[0]
    active = jnp.arange(num_points) < count
    # Simulate one step of every action from every belief.
    states = _draw(beliefs[:, None, :], uniforms[..., 0])
    action_grid = jnp.broadcast_to(jnp.arange(num_actions), states.shape)
    successor_probability = jax.vmap(jax.vmap(dynamics.row))(action_grid, states)
    next_states = _draw(successor_probability, uniforms[..., 1])
    obs_probability = observation[jnp.arange(num_actions)[None, :], next_states]
    observations = _draw(obs_probability, uniforms[..., 2])
    belief_predicted = jax.vmap(dynamics.predict)(beliefs)
    joint = (
        belief_predicted
        * jnp.take_along_axis(
            jnp.swapaxes(observation, 1, 2)[None],
            observations[:, :, None, None],
            axis=2,
        )[:, :, 0, :]
    )
    total = joint.sum(axis=-1, keepdims=True)
    # The sampled observation has positive probability, but guard the division
    # anyway and fall back to the prediction (as `belief_update` does).
    successors = jnp.where(
        total > 0, joint / jnp.where(total > 0, total, 1.0), belief_predicted
    )
    # Squared Euclidean distance to the nearest active belief, by a matmul.
    flat = successors.reshape(-1, num_states)
    squared = (
        jnp.sum(flat**2, axis=-1)[:, None]
        + jnp.sum(beliefs**2, axis=-1)[None, :]
        - 2.0 * flat @ beliefs.T
    )
    squared = jnp.where(active[None, :], squared, jnp.inf)
    nearest = jnp.min(squared, axis=-1).reshape(num_points, num_actions)
    pick = jnp.argmax(nearest, axis=-1)
    candidate = successors[jnp.arange(num_points), pick]
    distance = jnp.where(active, nearest[jnp.arange(num_points), pick], -jnp.inf)
    # Rank candidates farthest first; drop those already in the set and those
    # equal to a better-ranked candidate (two points simulating to the same
    # successor), then fill the free slots in rank order.
    order = jnp.argsort(-distance)
    ranked = candidate[order]
    between = (
        jnp.sum(ranked**2, axis=-1)[:, None]
        + jnp.sum(ranked**2, axis=-1)[None, :]
        - 2.0 * ranked @ ranked.T
    )
    earlier = jnp.arange(num_points)[None, :] < jnp.arange(num_points)[:, None]
    repeated = jnp.any(earlier & (between <= _SAME_POINT), axis=1)
    fresh = (distance[order] > _SAME_POINT) & ~repeated
    # Stable sort moves the fresh candidates to the front, keeping their rank.
    ranked = ranked[jnp.argsort(~fresh, stable=True)]
    added = jnp.minimum(jnp.minimum(jnp.sum(fresh), count), num_points - count)
    slot = jnp.arange(num_points)
    fill = (slot >= count) & (slot < count + added)
    source = jnp.clip(slot - count, 0, num_points - 1)
    beliefs = jnp.where(fill[:, None], ranked[source], beliefs)
    return beliefs, count + added


@eqx.filter_jit
def _random_walks(
    dynamics: _Dynamics,
    observation: Float[Array, "A S O"],
    start: Float[Array, " S"],
    uniforms: Float[Array, "L R 4"],
) -> Float[Array, "L R S"]:
    """The beliefs along `R` random walks of `L` steps from `start`, as Perseus.

    Each walk draws a true state from `start`, then takes uniformly random actions,
    drawing successors from T and observations from O, and records its belief after
    every step (Spaan & Vlassis 2005 collect their belief set this way). The
    uniforms come from NumPy, as in `_expand`.
    """
    num_actions = observation.shape[0]
    num_walks = uniforms.shape[1]
    states0 = _draw(
        jnp.broadcast_to(start, (num_walks, start.shape[0])), uniforms[0, :, 3]
    )
    beliefs0 = jnp.broadcast_to(start, (num_walks, start.shape[0]))

    def step(carry, u):
        beliefs, states = carry
        actions = jnp.minimum(
            (u[:, 0] * num_actions).astype(jnp.int32), num_actions - 1
        )
        next_states = _draw(jax.vmap(dynamics.row)(actions, states), u[:, 1])
        observations = _draw(observation[actions, next_states], u[:, 2])
        predicted = jax.vmap(dynamics.predict)(beliefs)
        predicted = jnp.take_along_axis(predicted, actions[:, None, None], axis=1)[:, 0]
        joint = predicted * observation[actions, :, observations]
        total = joint.sum(axis=-1, keepdims=True)
        # As in `belief_update`: a sampled observation has positive probability,
        # but a safe denominator keeps rounding from producing NaN.
        beliefs = jnp.where(
            total > 0, joint / jnp.where(total > 0, total, 1.0), predicted
        )
        return (beliefs, next_states), beliefs

    _, walked = jax.lax.scan(step, (beliefs0, states0), uniforms)
    return walked


class _StageState(NamedTuple):
    """Carry of one Perseus stage: the new vector set as it is built."""

    round: Int[Array, ""]  # rounds of `M` backups done in this stage
    alphas: Float[Array, "C S"]  # the new set; rows from `count` on are unused
    actions: Int[Array, " C"]
    count: Int[Array, ""]  # vectors in the new set
    values: Float[Array, " K"]  # value of each belief point under the new set
    best: Int[Array, " K"]  # index of its maximising new vector


@eqx.filter_jit
def _perseus_stage(
    dynamics: _Dynamics,
    observation_t: Float[Array, "A O S"],
    reward: Float[Array, "A S"],
    discount: float,
    alphas: Float[Array, "C S"],
    actions: Int[Array, " C"],
    count: Int[Array, ""],
    beliefs: Float[Array, "K S"],
    old_values: Float[Array, " K"],
    old_best: Int[Array, " K"],
    priority: Float[Array, " K"],
    observation: Float[Array, "A S O"],
    belief_support: tuple[Int[Array, "K V"], Float[Array, "K V"]] | None,
    max_observations: int,
    round_size: int,
    width: int | None,
) -> _StageState:
    """One stage of randomised point-based backups (Perseus; Spaan & Vlassis 2005).

    The new set starts empty. Each round backs up `M = round_size` belief points
    whose value under the new set is still below their value under the old set
    `alphas[:count]`, against the old set; a point whose backup is worse than its
    old value contributes its old best vector instead (so every point ends with
    at least its old value). Points are taken in the order of the random
    `priority`, which makes the choice a uniform draw without replacement as in
    Perseus, done `M` at a time so that the backups vectorise. The stage ends when
    every point has improved or the next round would overflow the `C` rows; most
    points improve through the vectors added for others, so a stage needs far
    fewer than `K` backups.

    Rows of `alphas` from `count` on must hold copies of valid vectors (the driver
    repeats row 0), so that maxima over all `C` rows need no mask.
    `belief_support`, when given, is every belief's nonzeros as `[K, V]` state
    indices and masses (padded with zero mass), for the value updates.
    """
    capacity, num_states = alphas.shape
    # A point counts as improved when its new value is within rounding of its old
    # value: the old best vector copied into the new set can score a last bit
    # lower when computed in a different block of the matrix product.
    slack = 1e-6 * (1.0 + jnp.abs(old_values))
    alphas_t = alphas.T
    # The finite floor stands for "no vector yet" and loses every comparison.
    floor = jnp.finfo(alphas.dtype).min

    def cond(state: _StageState):
        pending = state.values < old_values - slack
        room = state.count + round_size <= capacity
        return jnp.any(pending) & room

    def body(state: _StageState):
        pending = state.values < old_values - slack
        # Pending points first, in random order; improved points only fill the
        # round when fewer than `M` are pending (their backups are valid plans
        # too, merely not needed).
        _, chosen = jax.lax.top_k(
            jnp.where(pending, priority, priority - 2.0), round_size
        )

        def one(belief, fallback):
            if width is not None:
                return _backup_sparse(
                    dynamics,
                    observation,
                    observation_t,
                    reward,
                    discount,
                    alphas,
                    alphas_t,
                    belief,
                    fallback,
                    max_observations,
                    width,
                )
            return _backup_one(
                dynamics,
                observation_t,
                reward,
                discount,
                alphas,
                belief,
                fallback,
                max_observations,
            )

        fallback = old_best[chosen]
        new_alphas, new_actions, new_values = jax.vmap(one)(beliefs[chosen], fallback)
        # Perseus's rule: keep the old best vector where the backup is worse.
        worse = new_values < old_values[chosen]
        new_alphas = jnp.where(worse[:, None], alphas[fallback], new_alphas)
        new_actions = jnp.where(worse, actions[fallback], new_actions)
        stacked = jax.lax.dynamic_update_slice(
            state.alphas, new_alphas, (state.count, 0)
        )
        stacked_actions = jax.lax.dynamic_update_slice(
            state.actions, new_actions, (state.count,)
        )
        # Only the new vectors can raise a point's value: `K x M` products, over
        # each belief's support when it is stored (a gather of whole rows of
        # the transposed new vectors instead of a dense matrix product).
        if belief_support is None:
            scores = beliefs @ new_alphas.T
        else:
            index, mass = belief_support
            scores = jnp.einsum("kw,kwm->km", mass, new_alphas.T[index])
        top = jnp.argmax(scores, axis=1)
        top_value = jnp.take_along_axis(scores, top[:, None], axis=1)[:, 0]
        better = top_value > state.values
        return _StageState(
            state.round + 1,
            stacked,
            stacked_actions,
            state.count + round_size,
            jnp.where(better, top_value, state.values),
            jnp.where(better, state.count + top.astype(jnp.int32), state.best),
        )

    num_points = beliefs.shape[0]
    init = _StageState(
        jnp.zeros((), jnp.int32),
        alphas,
        actions,
        jnp.zeros((), jnp.int32),
        jnp.full((num_points,), floor, alphas.dtype),
        jnp.zeros((num_points,), jnp.int32),
    )
    del num_states
    return jax.lax.while_loop(cond, body, init)


# ---------------------------------------------------------------------------
# The driver.


def solve(
    pomdp: Pomdp,
    *,
    num_beliefs: int = 256,
    max_iterations: int = 1000,
    tolerance: float = 1e-4,
    time_limit: float | None = None,
    seed: int = 0,
    beliefs: Float[Array, "beliefs states"] | None = None,
    max_observations: int | None = None,
    sparse: bool | None = None,
    batch_size: int | None = None,
    sweeps_per_check: int = 10,
    method: str = "pbvi",
    num_alphas: int = 512,
    round_size: int = 32,
    walk_length: int = 30,
    support_width: int | None = 32,
) -> PbviResult:
    """Point-based value iteration (Pineau, Gordon & Thrun 2003).

    First collects `num_beliefs` belief points from `pomdp.start` by PBVI's
    stochastic simulation (the set doubles each round), then backs up every point
    at once until no point's value changes by more than `tolerance`, or
    `max_iterations` sweeps, or `time_limit` seconds.

    Example:
        >>> result = solve(tiger, num_beliefs=64)
        >>> action = policy(result.alphas, result.actions, tiger.start)

    Args:
        pomdp: the problem. With `discount == 1` the vectors start from a zero
            terminal value, backups are plain (not monotone) and exactly
            `max_iterations` sweeps run: the horizon.
        num_beliefs: K, the number of belief points (fixed; sets the shapes).
        max_iterations: cap on backup sweeps (the horizon when discount is 1).
        tolerance: stop when the largest change of a point's value is at most this
            (discount below 1 only).
        time_limit: wall-clock seconds for belief collection and backups, checked
            every `sweeps_per_check` sweeps; compilation is not counted.
        seed: seeds the belief simulation.
        beliefs: `[K, S]` use these belief points instead of collecting them.
        max_observations: per belief and action, argmax only over this many most
            probable observations (a sound lower bound; exact when no more are
            possible). `None` uses all.
        sparse: store T as padded nonzeros; `None` decides from its density.
        batch_size: belief points backed up together (bounds memory); `None`
            picks one from the problem's size.
        sweeps_per_check: sweeps per compiled call between time checks.
        method: `"pbvi"` backs up every point in each sweep, keeping one vector
            per point; `"perseus"` runs randomised backups (Spaan & Vlassis
            2005, "Perseus: Randomized point-based value iteration for POMDPs",
            JAIR): the points are the beliefs along random walks from the start
            (`walk_length` steps each), the vectors start at the blind-policy
            bound (`blind_policy_bound`), and each stage backs up random points,
            `round_size` at a time, until every point's value has improved, which
            takes far fewer backups than points. It needs discount < 1. A final
            exact backup at the start belief, over every observation, is added
            to the vectors. `iterations` then counts stages.
        num_alphas: Perseus: room for vectors per stage (C; sets the shapes).
        round_size: Perseus: backups made together in one round (M).
        walk_length: Perseus: steps of each random walk collecting beliefs.
        support_width: Perseus: score successor beliefs on their this many
            likeliest states, as gathers (see `_backup_sparse`), when that is at
            most half the states; `None` scores them densely.

    Returns:
        A `PbviResult`: alpha vectors `[N, S]`, their actions `[N]`, the belief
        points, the value of the start belief and timings.

    Raises:
        AutomixError: when an argument cannot be used (the message says which).
    """
    if num_beliefs < 1 and beliefs is None:
        raise AutomixError(f"`num_beliefs` must be at least 1, got {num_beliefs}")
    if max_iterations < 0:
        raise AutomixError(f"`max_iterations` must be >= 0, got {max_iterations}")
    if method not in ("pbvi", "perseus"):
        raise AutomixError(f"`method` must be 'pbvi' or 'perseus', got {method!r}")
    if method == "perseus":
        if pomdp.discount >= 1.0:
            raise AutomixError(
                "`method='perseus'` needs discount < 1; use 'pbvi' for a finite horizon"
            )
        if num_alphas < 2 * pomdp.num_actions or round_size < 1 or walk_length < 1:
            raise AutomixError(
                "Perseus needs `num_alphas` >= 2 * actions "
                f"({2 * pomdp.num_actions}), `round_size` >= 1 and `walk_length` "
                f">= 1; got {num_alphas}, {round_size}, {walk_length}"
            )
    finite_horizon = pomdp.discount >= 1.0
    dtype = pomdp.reward.dtype
    num_actions, num_states = pomdp.num_actions, pomdp.num_states
    num_observations = pomdp.num_observations
    kept = num_observations if max_observations is None else max_observations
    kept = int(min(max(kept, 1), num_observations))
    dynamics = _dynamics(np.asarray(pomdp.transition), sparse)
    observation_t = jnp.swapaxes(pomdp.observation, 1, 2)
    if method == "perseus":
        return _solve_perseus(
            pomdp,
            dynamics,
            None if beliefs is None else jnp.asarray(beliefs, dtype),
            num_beliefs=num_beliefs,
            num_alphas=num_alphas,
            round_size=round_size,
            walk_length=walk_length,
            support_width=support_width,
            max_iterations=max_iterations,
            tolerance=tolerance,
            time_limit=time_limit,
            seed=seed,
            kept=kept,
        )
    if beliefs is None:
        points = jnp.broadcast_to(pomdp.start, (num_beliefs, num_states)).astype(dtype)
    else:
        points = jnp.asarray(beliefs, dtype)
        if points.ndim != 2 or points.shape[1] != num_states:
            raise AutomixError(
                f"`beliefs` must be [K, S={num_states}], got {points.shape}"
            )
    num_points = points.shape[0]
    if batch_size is None:
        # Keep the per-batch intermediates ([batch, A, O, max(N, S)]) near 512K
        # numbers, so they stay in cache; measured faster than larger batches.
        per_point = num_actions * kept * max(num_points, num_states)
        batch_size = int(min(num_points, max(16, 2**19 // per_point)))
    alpha0, action0 = blind_lower_bound(pomdp)
    alphas = jnp.broadcast_to(alpha0, (num_points, num_states))
    actions = jnp.broadcast_to(action0, (num_points,))
    monotone = not finite_horizon
    static = dict(monotone=monotone, max_observations=kept, batch_size=batch_size)
    compile_seconds = 0.0
    # Compile both loops ahead of time so compilation is timed apart.
    started = time.perf_counter()
    sweep_args = (dynamics, observation_t, pomdp.reward, pomdp.discount)
    sweep_fn = _sweeps.lower(
        *sweep_args,
        alphas,
        actions,
        points,
        jnp.zeros((), jnp.int32),
        jnp.zeros((), dtype),
        **static,
    ).compile()
    count = jnp.ones((), jnp.int32)
    rng = np.random.default_rng(seed)
    uniforms_shape = (num_points, num_actions, 3)
    expand_fn = None
    if beliefs is None and num_points > 1:
        expand_fn = _expand.lower(
            dynamics,
            pomdp.observation,
            points,
            count,
            jnp.zeros(uniforms_shape, dtype),
        ).compile()
    compile_seconds = time.perf_counter() - started
    started = time.perf_counter()
    deadline = math.inf if time_limit is None else started + time_limit
    # Collect belief points, at most doubling the set each round; a few extra
    # rounds make up for simulated successors that were already in the set.
    if expand_fn is not None:
        for _ in range(math.ceil(math.log2(num_points)) + 4):
            uniforms = jnp.asarray(rng.random(uniforms_shape), dtype)
            points, count = expand_fn(
                dynamics, pomdp.observation, points, count, uniforms
            )
            if int(count) >= num_points or time.perf_counter() > deadline:
                break
    # Back up in compiled slices of `sweeps_per_check` sweeps, checking the clock.
    iterations = 0
    converged = False
    sweep_tolerance = jnp.asarray(-1.0 if finite_horizon else tolerance, dtype)
    while iterations < max_iterations:
        todo = min(sweeps_per_check, max_iterations - iterations)
        state = sweep_fn(
            *sweep_args,
            alphas,
            actions,
            points,
            jnp.asarray(todo, jnp.int32),
            sweep_tolerance,
            **static,
        )
        alphas, actions = state.alphas, state.actions
        iterations += int(state.iteration)
        if not finite_horizon and float(state.change) <= tolerance:
            converged = True
            break
        if time.perf_counter() > deadline:
            break
    converged = converged or (finite_horizon and iterations == max_iterations)
    alphas.block_until_ready()
    solve_seconds = time.perf_counter() - started
    return _result(
        pomdp,
        alphas,
        actions,
        points,
        iterations,
        converged,
        compile_seconds,
        solve_seconds,
    )


def _solve_perseus(
    pomdp: Pomdp,
    dynamics: _Dynamics,
    points: Float[Array, "K S"] | None,
    *,
    num_beliefs: int,
    num_alphas: int,
    round_size: int,
    walk_length: int,
    support_width: int | None,
    max_iterations: int,
    tolerance: float,
    time_limit: float | None,
    seed: int,
    kept: int,
) -> PbviResult:
    """Perseus stages from the blind-policy bound; see `solve`."""
    dtype = pomdp.reward.dtype
    num_actions, num_states = pomdp.num_actions, pomdp.num_states
    observation_t = jnp.swapaxes(pomdp.observation, 1, 2)
    rng = np.random.default_rng(seed)
    if points is None:
        num_walks = max(1, math.ceil((num_beliefs - 1) / walk_length))
        uniforms_shape = (walk_length, num_walks, 4)
    round_size = int(min(round_size, num_alphas // 2))
    # Score on supports only where they are much smaller than the state space.
    width = (
        None
        if support_width is None or 2 * support_width > num_states
        else support_width
    )
    alpha0 = _blind_policy(
        dynamics, pomdp.reward, pomdp.discount, _blind_steps(pomdp.discount)
    )
    # Unused rows repeat row 0, so maxima over all rows need no mask.
    alphas = jnp.concatenate(
        [alpha0, jnp.broadcast_to(alpha0[:1], (num_alphas - num_actions, num_states))]
    )
    actions = jnp.concatenate(
        [
            jnp.arange(num_actions, dtype=jnp.int32),
            jnp.zeros(num_alphas - num_actions, jnp.int32),
        ]
    )
    count = jnp.asarray(num_actions, jnp.int32)
    started = time.perf_counter()
    if points is None:
        walk_fn = _random_walks.lower(
            dynamics, pomdp.observation, pomdp.start, jnp.zeros(uniforms_shape, dtype)
        ).compile()
    compile_seconds = time.perf_counter() - started
    started = time.perf_counter()
    if points is None:
        walked = walk_fn(
            dynamics,
            pomdp.observation,
            pomdp.start,
            jnp.asarray(rng.random(uniforms_shape), dtype),
        )
        # The start belief is point 0, so its value never decreases.
        points = jnp.concatenate(
            [pomdp.start[None].astype(dtype), walked.reshape(-1, num_states)]
        )[:num_beliefs]
    collect_seconds = time.perf_counter() - started
    num_points = points.shape[0]
    # Store each belief's support when every belief is sparse. The start belief
    # may be much wider (TagAvoid's covers 841 states, its successors about 30);
    # it then leaves the set, and the exact backup at the end covers it.
    nonzeros = np.asarray(points != 0)
    support_size = max(1, int(nonzeros[1:].sum(axis=1).max(initial=0)))
    support = None
    if width is not None and 4 * support_size <= num_states and num_points > 1:
        if nonzeros[0].sum() > support_size:
            points, nonzeros = points[1:], nonzeros[1:]
            num_points -= 1
        order = np.argsort(~nonzeros, axis=1, kind="stable")[:, :support_size]
        support = (
            jnp.asarray(order, jnp.int32),
            jnp.take_along_axis(points, jnp.asarray(order), axis=1),
        )
    started = time.perf_counter()
    stage_args = (dynamics, observation_t, pomdp.reward, pomdp.discount)
    zeros_k = jnp.zeros(num_points, dtype)
    stage_fn = _perseus_stage.lower(
        *stage_args,
        alphas,
        actions,
        count,
        jnp.zeros((num_points, num_states), dtype),
        zeros_k,
        jnp.zeros(num_points, jnp.int32),
        zeros_k,
        pomdp.observation,
        support,
        max_observations=kept,
        round_size=round_size,
        width=width,
    ).compile()
    # A stage that changes nothing proves little (its few random backups may all
    # have missed the points that can improve), so a quiet stage is confirmed by
    # backing up every point once, as a PBVI sweep would.
    batch_size = int(
        min(num_points, max(16, 2**19 // (num_actions * kept * num_alphas)))
    )
    check_args = (*stage_args, alphas, actions)
    check_fn = _backup_jit.lower(
        *check_args,
        jnp.zeros((num_points, num_states), dtype),
        True,
        kept,
        batch_size,
    ).compile()
    final_fn = _backup_jit.lower(
        *check_args,
        pomdp.start[None].astype(dtype),
        True,
        pomdp.num_observations,
        1,
    ).compile()
    compile_seconds += time.perf_counter() - started
    started = time.perf_counter() - collect_seconds
    deadline = math.inf if time_limit is None else started + time_limit
    scores = points @ alphas.T
    best = jnp.argmax(scores, axis=1).astype(jnp.int32)
    values = jnp.max(scores, axis=1)
    iterations = 0
    converged = False
    while iterations < max_iterations:
        priority = jnp.asarray(rng.random(num_points), dtype)
        state = stage_fn(
            *stage_args,
            alphas,
            actions,
            count,
            points,
            values,
            best,
            priority,
            pomdp.observation,
            support,
            max_observations=kept,
            round_size=round_size,
            width=width,
        )
        iterations += 1
        change = float(jnp.max(jnp.abs(state.values - values)))
        count = state.count
        keep = jnp.arange(num_alphas) < count
        alphas = jnp.where(keep[:, None], state.alphas, state.alphas[:1])
        actions = jnp.where(keep, state.actions, state.actions[0])
        values, best = state.values, state.best
        if change <= tolerance:
            _, _, residual = check_fn(
                *stage_args, alphas, actions, points, True, kept, batch_size
            )
            if float(residual) <= tolerance:
                converged = True
                break
        if time.perf_counter() > deadline:
            break
    # One exact backup at the start belief, over every observation, against the
    # final set: a real plan, appended, so the value reported at the start is at
    # least the one-step lookahead of the set.
    used = int(count)
    start_alpha, start_action, _ = final_fn(
        *stage_args,
        alphas,
        actions,
        pomdp.start[None].astype(dtype),
        True,
        pomdp.num_observations,
        1,
    )
    alphas = jnp.concatenate([alphas[:used], start_alpha])
    actions = jnp.concatenate([actions[:used], start_action])
    alphas.block_until_ready()
    solve_seconds = time.perf_counter() - started
    return _result(
        pomdp,
        alphas,
        actions,
        points,
        iterations,
        converged,
        compile_seconds,
        solve_seconds,
    )


def _result(
    pomdp, alphas, actions, points, iterations, converged, compile_s, solve_s
) -> PbviResult:
    """Drop duplicate vectors and package a `PbviResult`."""
    # Several points often share their best vector; keep each vector once.
    stacked = np.concatenate(
        [
            np.asarray(alphas),
            np.asarray(actions, np.float64)[:, None].astype(alphas.dtype),
        ],
        axis=1,
    )
    _, first = np.unique(stacked, axis=0, return_index=True)
    first = np.sort(first)
    alphas = alphas[first]
    actions = actions[first]
    return PbviResult(
        alphas=alphas,
        actions=actions,
        beliefs=points,
        value=float(value(alphas, pomdp.start)),
        iterations=iterations,
        converged=converged,
        compile_seconds=compile_s,
        solve_seconds=solve_s,
    )
