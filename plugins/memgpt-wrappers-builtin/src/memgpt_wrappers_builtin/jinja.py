"""Rendering a model's own Jinja chat template, safely.

A chat template comes from a model file or a server, i.e. from whoever published the model, so it runs in
jinja2's ``ImmutableSandboxedEnvironment`` (no attribute access to Python internals, no mutation of the
objects we pass in), with the same settings and helpers Hugging Face's ``apply_chat_template`` gives it
(``trim_blocks``, ``lstrip_blocks``, ``loopcontrols``, ``raise_exception``, ``strftime_now``, a ``tojson``
that keeps non-ASCII). jinja2 is imported only when a template is rendered.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import Any

from memgpt.plugin import ConfigError


class TemplateFailure(ConfigError):
    """The model's chat template could not be compiled or rendered (or refused the conversation)."""


def _raise(message: str) -> None:
    raise TemplateFailure(f"the chat template refused the conversation: {message}")


def _tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False, **_: Any) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent)


@functools.lru_cache(maxsize=16)
def _compiled(source: str) -> Any:
    from jinja2 import TemplateError
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    env.filters["tojson"] = _tojson
    try:
        return env.from_string(source)
    except TemplateError as exc:
        raise TemplateFailure(f"the chat template does not compile: {exc}") from None


def render(
    source: str,
    messages: list[dict[str, str]],
    *,
    add_generation_prompt: bool,
    bos_token: str = "",
    eos_token: str = "</s>",
) -> str:
    """Render ``messages`` (``{"role", "content"}`` dicts) with the template ``source``.

    ``bos_token`` defaults to empty: backends add the BOS token when they tokenize (see ``families``).
    ``eos_token`` is a guess (``</s>``, the Llama/Mistral one) since wrapper options do not carry it.
    """
    template = _compiled(source)
    try:
        return str(
            template.render(
                messages=messages,
                add_generation_prompt=add_generation_prompt,
                bos_token=bos_token,
                eos_token=eos_token,
                tools=None,
            )
        )
    except TemplateFailure:
        raise
    except Exception as exc:  # code from the model's publisher: whatever it raises is a template failure
        raise TemplateFailure(f"the chat template failed to render: {type(exc).__name__}: {exc}") from None
