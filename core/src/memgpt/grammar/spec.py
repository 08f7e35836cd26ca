"""The grammar-builder contract registered through ``register_grammars``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from memgpt.contract.types import CallShape, Constraint, FunctionSchema

GrammarBuilder = Callable[[Sequence[FunctionSchema], CallShape], Constraint]


@dataclass(frozen=True)
class GrammarSpec:
    """A named way to turn the agent's functions into a constraint (GBNF and/or JSON schema).

    ``build(functions, shape)`` must be pure and deterministic: core caches its result per function set.
    """

    name: str
    build: GrammarBuilder
    description: str = ""
    plugin: str = ""
