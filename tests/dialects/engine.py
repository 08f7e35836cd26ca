"""The generation engine every dialect test server shares: one real llama.cpp model behind one lock.

The dialect servers under ``tests/dialects/`` stand in for servers that cannot be installed here (koboldcpp,
text-generation-webui, LM Studio, vLLM). They must generate for real, under the constraint they received, so
they all call ``Engine.generate``: a token loop over llama-cpp-python's ``Llama.generate`` that honours stop
strings, stop tokens, max tokens and a GBNF grammar, and reports the truth (which tokens it sampled, why it
stopped). The lock serialises requests because a ``Llama`` object is not safe to use from two threads.

A grammar is validated before it reaches llama.cpp: ``LlamaGrammar.from_string`` checks nothing, and a
grammar llama.cpp cannot parse makes ``llama_sampler_init_grammar`` return NULL, which the binding then
dereferences (the process dies). ``Engine.check_grammar`` runs ``memgpt_backend_llamacpp.grammar_check.check_gbnf`` for a
readable reason and then the vocabulary-aware native parser as the last guard.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Finish = Literal["stop", "length"]


class GrammarRejected(ValueError):
    """A grammar (or a JSON schema converted to one) that llama.cpp would not accept."""


class ContextOverflow(ValueError):
    """The prompt leaves no room to generate in the model's context window."""

    def __init__(self, prompt_tokens: int, n_ctx: int):
        self.prompt_tokens, self.n_ctx = prompt_tokens, n_ctx
        super().__init__(f"the prompt has {prompt_tokens} tokens but the context window is {n_ctx}")


@dataclass(frozen=True)
class Sampling:
    """Sampler settings in llama.cpp's terms; each dialect maps its own field names onto these."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    typical_p: float = 1.0
    repeat_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    banned_tokens: tuple[int, ...] = ()


@dataclass(frozen=True)
class Generation:
    """What one generation really did.

    ``text`` is cut before the first stop string (OpenAI semantics); ``raw_text`` is every sampled token
    decoded, stop string and the rest of its token included (koboldcpp without ``trim_stop``).
    ``stop`` is the stop string or stop token id that ended it (None for end-of-generation or length).
    ``completion_tokens`` counts sampled tokens, not the end-of-generation token.
    """

    text: str
    raw_text: str
    finish: Finish
    prompt_tokens: int
    completion_tokens: int
    stop: str | int | None = None
    tokens: tuple[int, ...] = field(default=(), repr=False)


class Engine:
    """One loaded ``Llama`` shared by every dialect server, with the lock that serialises its use."""

    def __init__(self, llama: Any, lock: threading.Lock | None = None):
        self.llama = llama
        self.lock = lock or threading.Lock()

    @property
    def n_ctx(self) -> int:
        return int(self.llama.n_ctx())

    @property
    def n_ctx_train(self) -> int:
        return int(self.llama._model.n_ctx_train())

    @property
    def model_path(self) -> Path:
        return Path(self.llama.model_path)

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self.llama.metadata)

    def tokenize(self, text: str, *, add_special: bool = True) -> list[int]:
        """Tokens of ``text`` as the servers count them: special tokens parsed, BOS only if the model adds one."""
        with self.lock:
            return list(self.llama.tokenize(text.encode("utf-8"), add_bos=add_special, special=True))

    def detokenize(self, tokens: Sequence[int]) -> str:
        with self.lock:
            return self.llama.detokenize(list(tokens)).decode("utf-8", errors="ignore")

    def render_chat(self, messages: Sequence[dict[str, str]]) -> str:
        """The prompt the model's own chat template (GGUF metadata) makes of ``messages``."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self.metadata.get("tokenizer.chat_template")
        if not template:
            raise ValueError("the model has no chat template in its GGUF metadata")
        vocab = self.llama._model
        eos = vocab.token_get_text(self.llama.token_eos()) if self.llama.token_eos() >= 0 else ""
        bos = vocab.token_get_text(self.llama.token_bos()) if self.llama.token_bos() >= 0 else ""
        formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos, add_generation_prompt=True)
        return formatter(messages=list(messages)).prompt

    def check_grammar(self, gbnf: str) -> None:
        """Raise ``GrammarRejected`` unless llama.cpp accepts ``gbnf`` with this model's vocabulary."""
        import llama_cpp

        try:
            from memgpt_backend_llamacpp.grammar_check import check_gbnf
        except ImportError:  # the shared validator is optional; the native check below is the real guard
            check_gbnf = None
        if check_gbnf is not None:
            from memgpt.errors import GrammarError

            try:
                check_gbnf(gbnf)
            except GrammarError as exc:
                raise GrammarRejected(str(exc)) from exc
        if not gbnf.strip() or "\x00" in gbnf:
            raise GrammarRejected("the grammar is empty or contains a NUL character")
        with self.lock:
            sampler = llama_cpp.llama_sampler_init_grammar(self.llama._model.vocab, gbnf.encode("utf-8"), b"root")
            if not sampler:
                raise GrammarRejected("llama.cpp's grammar parser rejected the grammar")
            llama_cpp.llama_sampler_free(sampler)

    def schema_to_gbnf(self, schema: dict[str, Any] | str) -> str:
        """Convert a JSON schema with llama-cpp-python's converter (it takes a JSON *string*), then validate."""
        from llama_cpp.llama_grammar import json_schema_to_gbnf

        text = schema if isinstance(schema, str) else json.dumps(schema)
        try:
            gbnf = compact_repetitions(json_schema_to_gbnf(text))
        except Exception as exc:  # the converter raises whatever it meets: ValueError, KeyError, RecursionError...
            raise GrammarRejected(f"JSON schema conversion failed: {exc}") from exc
        self.check_grammar(gbnf)
        return gbnf

    def generate(
        self,
        prompt: str | Sequence[int],
        *,
        max_tokens: int,
        stop: Sequence[str] = (),
        stop_tokens: Sequence[int] = (),
        gbnf: str | None = None,
        sampling: Sampling | None = None,
    ) -> Generation:
        """Sample up to ``max_tokens`` tokens after ``prompt`` (text or token ids), under ``gbnf`` if given."""
        import llama_cpp
        from llama_cpp import LlamaGrammar, LogitsProcessorList

        sampling = sampling or Sampling()
        if gbnf is not None:
            self.check_grammar(gbnf)
        tokens = self.tokenize(prompt) if isinstance(prompt, str) else list(prompt)
        if len(tokens) >= self.n_ctx:
            raise ContextOverflow(len(tokens), self.n_ctx)
        budget = min(max_tokens, self.n_ctx - len(tokens))
        stops = [s for s in stop if s]
        processors = None
        if sampling.banned_tokens:
            banned = list(sampling.banned_tokens)

            def ban(_ids: Any, scores: Any) -> Any:
                scores[banned] = -float("inf")
                return scores

            processors = LogitsProcessorList([ban])

        out: list[int] = []
        finish: Finish = "length"
        stopped_by: str | int | None = None
        with self.lock:
            vocab = self.llama._model.vocab
            if sampling.seed is not None and sampling.seed >= 0:
                self.llama.set_seed(sampling.seed)
            grammar = LlamaGrammar.from_string(gbnf, verbose=False) if gbnf is not None else None
            if budget > 0:
                for token in self.llama.generate(
                    tokens,
                    top_k=max(sampling.top_k, 0),
                    top_p=sampling.top_p,
                    min_p=sampling.min_p,
                    typical_p=sampling.typical_p,
                    temp=sampling.temperature,
                    repeat_penalty=sampling.repeat_penalty,
                    presence_penalty=sampling.presence_penalty,
                    frequency_penalty=sampling.frequency_penalty,
                    logits_processor=processors,
                    grammar=grammar,
                ):
                    if llama_cpp.llama_vocab_is_eog(vocab, token):
                        finish = "stop"
                        break
                    if token in stop_tokens:
                        finish, stopped_by = "stop", int(token)
                        break
                    out.append(int(token))
                    if stops:
                        decoded = self.llama.detokenize(out).decode("utf-8", errors="ignore")
                        hit = _first_stop(decoded, stops)
                        if hit is not None:
                            finish, stopped_by = "stop", hit
                            break
                    if len(out) >= budget:
                        break
            raw = self.llama.detokenize(out).decode("utf-8", errors="ignore")
        text = raw[: raw.find(stopped_by)] if isinstance(stopped_by, str) else raw
        return Generation(
            text=text,
            raw_text=raw,
            finish=finish,
            prompt_tokens=len(tokens),
            completion_tokens=len(out),
            stop=stopped_by,
            tokens=tuple(out),
        )


_NESTED_OPTIONALS = re.compile(r"\((?P<item>[A-Za-z][\w-]*)(?P<more>(?: \((?P=item))+)(?P<close>(?:\)\?)+)")


def compact_repetitions(gbnf: str) -> str:
    """Rewrite ``(x (x (x)?)?)?`` as ``x{0,3}``: the same language, written the way the servers write it.

    llama-cpp-python 0.3.36's converter spells ``maxLength: n`` as n nested optionals; llama.cpp's own
    converter (LM Studio) and xgrammar (vLLM) use a bounded repetition. The nested form is refused by
    ``check_gbnf`` beyond 256 levels and by llama.cpp's parser beyond ~1000, so without this a schema the real
    servers accept (e.g. a 1200-character string) would be refused here.
    """

    def compact(match: re.Match[str]) -> str:
        depth = 1 + match.group("more").count(" (")
        closers = match.group("close").count(")?")
        if closers < depth:
            return match.group(0)
        return f"{match.group('item')}{{0,{depth}}}" + ")?" * (closers - depth)

    return _NESTED_OPTIONALS.sub(compact, gbnf)


def _first_stop(text: str, stops: Sequence[str]) -> str | None:
    """The stop string that occurs earliest in ``text`` (servers cut at the first match)."""
    found = [(text.find(s), s) for s in stops if s in text]
    return min(found)[1] if found else None


def choice_gbnf(choices: Sequence[str]) -> str:
    """A grammar that accepts exactly one of ``choices`` (vLLM's ``structured_outputs.choice``)."""
    alternatives = " | ".join(json.dumps(c) for c in choices)
    return f"root ::= {alternatives}\n"
