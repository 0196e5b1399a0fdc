"""automix-jax: decide, query by query, which language model to pay for.

A re-implementation and extension of AutoMix (Madaan et al., "AutoMix: Automatically
Mixing Language Models", NeurIPS 2024) as pure JAX functions over a pytree of
observations.
"""

from ._data import (
    Columns,
    Dataset,
    demo_path,
    detect_models,
    from_records,
    load,
    load_csv,
    load_dataframe,
    load_jsonl,
)
from ._errors import (
    AutomixError,
    DataError,
    DegenerateError,
    EndpointError,
    PolicyError,
    PomdpFormatError,
    SpecError,
)
from ._metrics import (
    Baseline,
    Lift,
    LiftStatus,
    Summary,
    baseline,
    cost_quality_auc,
    ibc_lift,
    lift_message,
    objective,
)
from ._observations import Observations, Query, queries
from ._policies import (
    POLICIES,
    AlwaysModel,
    Bands,
    ChainedThreshold,
    DoubleThreshold,
    Oracle,
    Policy,
    RandomRate,
    SelfConsistency,
    Threshold,
    TripleThreshold,
    bin_edges,
    get_policy,
    query_cost,
)
from ._protocol import DEFAULT_POLICIES, PolicyResult, Report, evaluate
from ._routing import Tuned, draw_noise, outcome, route, score_grid, summarize, tune
from ._tuned import TunedPolicy, fingerprint, fit, load_tuned, register_family

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_POLICIES",
    "POLICIES",
    "AlwaysModel",
    "Bands",
    "AutomixError",
    "Baseline",
    "ChainedThreshold",
    "Columns",
    "DataError",
    "Dataset",
    "DegenerateError",
    "DoubleThreshold",
    "EndpointError",
    "Lift",
    "LiftStatus",
    "Observations",
    "Oracle",
    "Policy",
    "PolicyError",
    "PolicyResult",
    "PomdpFormatError",
    "Query",
    "RandomRate",
    "Report",
    "SelfConsistency",
    "SpecError",
    "Summary",
    "Threshold",
    "TripleThreshold",
    "Tuned",
    "TunedPolicy",
    "draw_noise",
    "fingerprint",
    "fit",
    "load_tuned",
    "register_family",
    "baseline",
    "bin_edges",
    "cost_quality_auc",
    "demo_path",
    "detect_models",
    "evaluate",
    "from_records",
    "get_policy",
    "ibc_lift",
    "lift_message",
    "load",
    "load_csv",
    "load_dataframe",
    "load_jsonl",
    "objective",
    "outcome",
    "queries",
    "query_cost",
    "route",
    "score_grid",
    "summarize",
    "tune",
]
