"""How a test client speaks each dialect: the generation request it sends and where the answer lies.

Shared by ``tests/test_dialect_servers.py`` (and usable by any test that drives the dialect test servers
with plain httpx). The request bodies use each server's documented field names, nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

VLLM_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
LMSTUDIO_MODEL = "smollm2-135m-instruct"
WEBUI_MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
OLLAMA_MODEL = "smollm2:135m"


def schema_gbnf(schema: dict[str, Any]) -> str:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    return json_schema_to_gbnf(json.dumps(schema))


@dataclass(frozen=True)
class Speaker:
    """How a client speaks one dialect: the generation request it sends and where the answer lies.

    A constraint is ``("schema", dict)``, ``("literal", str)`` (output must be exactly that text, or its JSON
    string for LM Studio, which only takes JSON schemas), ``("gbnf", str)`` or None.
    """

    name: str
    path: str
    request: Callable[..., dict[str, Any]]
    text: Callable[[dict[str, Any]], str]
    finish: Callable[[dict[str, Any]], str]
    usage: Callable[[dict[str, Any]], dict[str, int] | None]
    error: Callable[[dict[str, Any]], str]
    literal: Callable[[str], str] = lambda s: s


def _gbnf(constraint: tuple[str, Any] | None) -> str | None:
    if constraint is None:
        return None
    kind, value = constraint
    if kind == "schema":
        return schema_gbnf(value)
    if kind == "literal":
        return f"root ::= {json.dumps(value)}\n"
    return value


def kobold_body(prompt: str, max_tokens: int, constraint: Any = None, stop: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    body = {
        "prompt": prompt,
        "max_length": max_tokens,
        "max_context_length": 2048,
        "temperature": 0.7,
        "top_k": 40,
        "top_p": 0.9,
        "min_p": 0.05,
        "rep_pen": 1.1,
        "rep_pen_range": 256,
        "stop_sequence": list(stop),
        "trim_stop": True,
        "sampler_seed": 7,
        "memory": "",
    }
    if constraint is not None:
        body |= {"grammar": _gbnf(constraint), "grammar_retain_state": False}
    return body | extra


def webui_body(prompt: str, max_tokens: int, constraint: Any = None, stop: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    body = {
        "model": WEBUI_MODEL,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 40,
        "min_p": 0.05,
        "repetition_penalty": 1.1,
        "stop": list(stop),
        "seed": 7,
        "truncation_length": 2048,
        "custom_token_bans": "",
        "ban_eos_token": False,
    }
    if constraint is not None:
        body["grammar_string"] = _gbnf(constraint)
    return body | extra


def lmstudio_body(
    prompt: str, max_tokens: int, constraint: Any = None, stop: tuple[str, ...] = (), **extra: Any
) -> dict[str, Any]:
    body = {
        "model": LMSTUDIO_MODEL,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 40,
        "repeat_penalty": 1.1,
        "stop": list(stop),
        "seed": 7,
    }
    if constraint is not None:
        kind, value = constraint
        schema = value if kind == "schema" else {"type": "string", "enum": [value]}
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "call", "strict": True, "schema": schema}}
    return body | extra


def vllm_body(prompt: str, max_tokens: int, constraint: Any = None, stop: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    body = {
        "model": VLLM_MODEL,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 40,
        "min_p": 0.05,
        "repetition_penalty": 1.1,
        "stop": list(stop),
        "seed": 7,
    }
    if constraint is not None:
        kind, value = constraint
        body["structured_outputs"] = {"schema": {"json": value}, "literal": {"choice": [value]}, "gbnf": {"grammar": value}}[kind]
    return body | extra


#: Ollama's sampling settings live under ``options``; everything else is a top-level field.
OLLAMA_OPTIONS = ("temperature", "top_k", "top_p", "min_p", "repeat_penalty", "seed", "num_ctx", "num_predict", "stop")


def ollama_body(prompt: str, max_tokens: int, constraint: Any = None, stop: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    """``/api/generate`` with the prompt as is (``raw``), one JSON answer (``stream: false``); a constraint is a
    JSON schema in ``format`` (Ollama takes no GBNF), a literal the schema of that one JSON string."""
    options = {
        "num_ctx": 4096,
        "num_predict": max_tokens,
        "temperature": 0.7,
        "top_k": 40,
        "top_p": 0.9,
        "min_p": 0.05,
        "repeat_penalty": 1.1,
        "seed": 7,
        "stop": list(stop),
    }
    options |= {k: v for k, v in extra.items() if k in OLLAMA_OPTIONS}
    body = {"model": OLLAMA_MODEL, "prompt": prompt, "raw": True, "stream": False, "options": options}
    if constraint is not None:
        kind, value = constraint
        if kind == "gbnf":
            raise ValueError("Ollama takes no GBNF grammar: give a JSON schema")
        body["format"] = value if kind == "schema" else {"type": "string", "enum": [value]}
    return body | {k: v for k, v in extra.items() if k not in OLLAMA_OPTIONS}


def _ollama_usage(data: dict[str, Any]) -> dict[str, int]:
    prompt, completion = data.get("prompt_eval_count", 0), data.get("eval_count", 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


#: Ollama speaks JSON schema only (like LM Studio), so it is not in ``SPEAKERS``, whose shared tests also send
#: GBNF; ``plugins/memgpt-backend-ollama/tests`` runs the same checks on it.
OLLAMA = Speaker(
    "ollama",
    "/api/generate",
    ollama_body,
    text=lambda d: d["response"],
    finish=lambda d: d["done_reason"],
    usage=_ollama_usage,
    error=lambda d: d["error"],
    literal=json.dumps,
)


def _openai_usage(data: dict[str, Any]) -> dict[str, int]:
    return data["usage"]


SPEAKERS = {
    "koboldcpp": Speaker(
        "koboldcpp",
        "/api/v1/generate",
        kobold_body,
        text=lambda d: d["results"][0]["text"],
        finish=lambda d: d["results"][0]["finish_reason"],
        usage=lambda d: None,
        error=lambda d: d["detail"]["msg"],
    ),
    "webui": Speaker(
        "webui",
        "/v1/completions",
        webui_body,
        text=lambda d: d["choices"][0]["text"],
        finish=lambda d: d["choices"][0]["finish_reason"],
        usage=_openai_usage,
        error=lambda d: d["error"]["message"],
    ),
    "lmstudio": Speaker(
        "lmstudio",
        "/v1/completions",
        lmstudio_body,
        text=lambda d: d["choices"][0]["text"],
        finish=lambda d: d["choices"][0]["finish_reason"],
        usage=_openai_usage,
        error=lambda d: d["error"],
        literal=json.dumps,
    ),
    "vllm": Speaker(
        "vllm",
        "/v1/completions",
        vllm_body,
        text=lambda d: d["choices"][0]["text"],
        finish=lambda d: d["choices"][0]["finish_reason"],
        usage=_openai_usage,
        error=lambda d: d["error"]["message"],
    ),
}
