"""Live routing over OpenAI-compatible endpoints (see `automix-jax run`)."""

from ._live import *  # noqa: F403
from ._live import __all__  # noqa: F401
