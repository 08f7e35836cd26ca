"""Function schemas → constraints (GBNF, JSON schema), and grammar validation."""

from memgpt.grammar.spec import GrammarSpec

__all__ = ["GrammarSpec"]
