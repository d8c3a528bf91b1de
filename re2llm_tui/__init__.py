"""re2llm-tui: a terminal workbench for Re2LLM (Wang et al., AAAI 2025).

The core library (data, prompts, LLM client, metrics, reflection, knowledge base,
agent, training, evaluation) lives in this package and never imports the UI;
``re2llm_tui.cli`` (Typer) and ``re2llm_tui.tui`` (Textual) are thin layers over it.
"""

__version__ = "0.1.0"
