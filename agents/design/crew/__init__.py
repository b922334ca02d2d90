"""The strategy-design crew: three CrewAI agents on an Anthropic-Messages-format LLM.

* `prompts`: the task descriptions, with the user's text fenced off as untrusted data;
* `assembly`: the CrewAI LLM, agents, tasks and the designer's validating guardrail;
* `output`: finding and validating the strategy JSON, cleaning the explanation (pure);
* `run`: `run_crew` and its `CrewResult`, including failure classification.
"""

from __future__ import annotations

from agents.design.crew.output import extract_json_object, sanitize_explanation, validate_strategy_text
from agents.design.crew.prompts import BEGIN_MARK, END_MARK
from agents.design.crew.run import CrewResult, run_crew

__all__ = [
    "BEGIN_MARK",
    "END_MARK",
    "CrewResult",
    "extract_json_object",
    "run_crew",
    "sanitize_explanation",
    "validate_strategy_text",
]
