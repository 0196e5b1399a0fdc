"""Live routing over OpenAI-compatible chat-completions endpoints.

Read a cascade from TOML (`load_endpoints`), questions from JSON Lines
(`read_queries`), pick a policy (`load_live_policy`) and run it (`run_live`); the
output rows are in the format `automix-jax evaluate` reads, and a journal of paid
responses lets an interrupted run resume without paying twice.
"""

from ._client import ChatClient, ChatError, ChatResponse
from ._endpoints import (
    Endpoint,
    EndpointsConfig,
    Limits,
    Price,
    RetryPolicy,
    load_endpoints,
    parse_endpoints,
)
from ._journal import Journal, JournalEntry, prompt_hash, request_key
from ._policy import LivePolicy, load_live_policy
from ._prompts import PromptTemplates, load_prompts, parse_verdict
from ._runner import (
    LiveSettings,
    Progress,
    Query,
    RunSummary,
    read_queries,
    run_live,
    run_live_async,
)
from ._scoring import normalize_answer, score_answer, token_f1

__all__ = [
    "ChatClient",
    "ChatError",
    "ChatResponse",
    "Endpoint",
    "EndpointsConfig",
    "Journal",
    "JournalEntry",
    "Limits",
    "LivePolicy",
    "LiveSettings",
    "Price",
    "Progress",
    "PromptTemplates",
    "Query",
    "RetryPolicy",
    "RunSummary",
    "load_endpoints",
    "load_live_policy",
    "load_prompts",
    "normalize_answer",
    "parse_endpoints",
    "parse_verdict",
    "prompt_hash",
    "read_queries",
    "request_key",
    "run_live",
    "run_live_async",
    "score_answer",
    "token_f1",
]
