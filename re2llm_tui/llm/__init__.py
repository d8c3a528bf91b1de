"""The LLM layer: one cached client over litellm, the embedded local model, ranking methods.

Importing this package is cheap: litellm and llama-cpp-python are imported only when a call
is made.  See :mod:`re2llm_tui.llm.client` for the public API.
"""

from re2llm_tui.llm.client import (
    DEFAULT_MODEL,
    DEMO_NOTICE,
    BudgetExceeded,
    LLMClient,
    LLMResult,
    RankResult,
    Stats,
    resolve_model,
)

__all__ = ["DEFAULT_MODEL", "DEMO_NOTICE", "BudgetExceeded", "LLMClient", "LLMResult",
           "RankResult", "Stats", "resolve_model"]
