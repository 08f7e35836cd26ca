"""The generation loop: llama-server's sampling checked against the grammar, and (optionally) forced text as a
verified draft.

Why not ``Llama.create_completion(grammar=...)``: the binding puts the grammar sampler first in its chain,
so every step matches the *whole* vocabulary (49k tokens for SmolLM2) against the grammar; decoding ran at
0.68x of unconstrained. Here, as llama-server does:

1. sample with llama-server's chain (penalties → top-k → top-p → min-p → temperature → dist), its penalty
   window holding the prompt's last 64 tokens as on the server;
2. check only the sampled token against the grammar (a one-candidate ``llama_sampler_apply``);
3. only when it is rejected, filter the whole vocabulary with the grammar and sample again.

This samples from exactly the constrained distribution: a valid token t is returned with probability
p(t) + P(reject)·p(t)/Z = p(t)/Z, Z being the valid mass (up to where top-k/top-p truncate).

Fast-forward, verified: when the grammar admits exactly one next character, and again after it, the forced
run (``"function": "``, ``", "params": {"inner_thoughts": "`` ...) is a *draft*: its canonical tokenization.
The draft is never simply appended. The model samples the next token as usual; when that token is the
draft's first, the rest of the draft is decoded as one batch (logits kept for every position) and each
position is sampled in turn from its own logits, under the grammar, as if decoded one by one: tokens agree
with the draft until the first that does not, which is kept, and the draft's tail is dropped from the KV
cache. The model therefore writes forced text exactly as it would without the draft (it often does not
write it the tokenizer's way: SmolLM2 opens a call with ``{`` then ``"``, never ``{"``), and the output has
the distribution of plain token-by-token sampling; the draft only saves decode calls where the model agrees
with it. (Appending the canonical tokens without sampling them, as this loop once did, put the model in
token sequences it does not write and changed what it said: with SmolLM2 the agent answered 0 of 10 messages
on a conversation where token-by-token sampling answered 10; ``test_sampler_fidelity.py`` measures it.)
The grammar is probed with the ~250 single-byte tokens plus end-of-generation: if exactly one byte is allowed
and generation may not end, that byte is forced (see ``Decoder.__init__`` for why this is exact).

The draft is off by default (``fast_forward=False``): with SmolLM2 on one core it decoded at 0.84x of
unconstrained sampling (CPU time) against 0.98x for plain sampling under the grammar (``bench/bench_embedded.py
--speed-only``, ``bench/results/bench_embedded_speed.json``). The model leaves the tokenizer's path early
(after ``{``), so most of each batch is discarded, and probing the grammar for forced text costs a pass over
the probe set at every token. A larger model, for which a batch of tokens costs about what one does, may
gain from it; the fidelity test holds both modes to llama-server's distribution.
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from llama_cpp import llama_cpp as C

from memgpt.plugin import BackendError, FinishReason, SamplingParams
from memgpt_backend_llamacpp.llama_model import LlamaModel

MAX_FORCED_BYTES = 128
REFINE_BUCKET = 4096  # tokens sharing a first byte beyond which the rejection path looks at two bytes
PENALTY_LAST_N = 64
_TOKEN_DTYPE = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)


class _Candidates:
    """A reusable ``llama_token_data_array`` over ``ids`` (the whole vocabulary, or a probe set)."""

    def __init__(self, ids: np.ndarray) -> None:
        self.ids = ids.astype(np.intc)
        self.data = np.zeros(len(ids), dtype=_TOKEN_DTYPE)
        self.pointer = self.data.ctypes.data_as(C.llama_token_data_p)
        self.array = C.llama_token_data_array(data=self.pointer, size=len(ids), selected=-1, sorted=False)
        self.ref = ctypes.byref(self.array)

    def reset(self, logits: np.ndarray | float) -> None:
        # Samplers sort and shrink the array in place (and may move its pointer): restore all of it.
        self.data["id"] = self.ids
        self.data["logit"] = logits
        self.data["p"] = 0.0
        self.array.data = self.pointer  # type: ignore[assignment]  # ctypes: a pointer where the stub says array
        self.array.size = len(self.ids)
        self.array.selected = -1
        self.array.sorted = False

    def selected(self) -> int:
        if self.array.selected < 0:
            raise BackendError("the sampler chain selected no token")
        return int(self.array.data[self.array.selected].id)

    def allowed(self) -> list[int]:
        """Ids still possible (finite logit) after a grammar pass; the grammar only masks, never reorders."""
        logits = self.data["logit"][: self.array.size]
        return [int(i) for i in self.data["id"][: self.array.size][np.isfinite(logits)]]


def build_chain(params: SamplingParams, n_vocab: int) -> Any:
    """The sampler chain for ``params``, in llama-server's order (``common_sampler_init``): penalties →
    top-k → top-p → min-p → temperature → dist. Freed with ``llama_sampler_free``. Its penalty window is
    empty: ``Decoder.generate`` feeds it the prompt's tail, as llama-server does."""
    chain = C.llama_sampler_chain_init(C.llama_sampler_chain_default_params())
    add = C.llama_sampler_chain_add
    if params.repeat_penalty != 1.0:
        add(chain, C.llama_sampler_init_penalties(n_vocab, PENALTY_LAST_N, params.repeat_penalty, 0.0, 0.0))
    if params.temperature <= 0:
        add(chain, C.llama_sampler_init_greedy())
        return chain
    if params.top_k > 0:
        add(chain, C.llama_sampler_init_top_k(params.top_k))
    if params.top_p < 1.0:
        add(chain, C.llama_sampler_init_top_p(params.top_p, 1))
    if params.min_p > 0.0:
        add(chain, C.llama_sampler_init_min_p(params.min_p, 1))
    add(chain, C.llama_sampler_init_temp(params.temperature))
    seed = C.LLAMA_DEFAULT_SEED if params.seed is None else params.seed & 0xFFFFFFFF
    add(chain, C.llama_sampler_init_dist(seed))
    return chain


@dataclass
class Generation:
    """What one completion produced; ``drafted_tokens`` of them were sampled from logits of one batched decode
    (a forced run the model wrote as drafted), not decoded one by one."""

    tokens: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: FinishReason = "length"
    drafted_tokens: int = 0


class Decoder:
    """Generates from whatever the runtime's KV cache holds; one per loaded model (reuses its buffers)."""

    def __init__(self, runtime: LlamaModel) -> None:
        self.rt = runtime
        self.full = _Candidates(np.arange(runtime.n_vocab))
        self.single = _Candidates(np.zeros(1))
        # Probe set for fast-forward: for each byte, its single-byte token, or (when the vocabulary has none)
        # every token that starts with it. The grammar matches a token byte by byte, so if it rejects every
        # probe for byte b, it rejects every token starting with b: "only c is allowed" is then exact.
        self.byte_token: dict[int, int] = {}
        starting: dict[int, list[int]] = {}
        for token, piece in enumerate(runtime.pieces):
            if piece and token not in runtime.eog:
                starting.setdefault(piece[0], []).append(token)
                if len(piece) == 1:
                    self.byte_token.setdefault(piece[0], token)
        probe_ids: list[int] = []
        for byte in range(1, 256):  # NUL never passes a grammar
            probe_ids += [self.byte_token[byte]] if byte in self.byte_token else starting.get(byte, [])
        self.first_byte = {token: runtime.pieces[token][0] for token in probe_ids}
        self.starting = {byte: np.array(tokens, dtype=np.intc) for byte, tokens in starting.items()}
        # Second level for the big buckets (' ' starts two thirds of a GPT-2 style vocabulary).
        self.starting2: dict[bytes, np.ndarray] = {}
        for byte, tokens in starting.items():
            if len(tokens) > REFINE_BUCKET and byte < 0x80 and byte in self.byte_token:
                pairs: dict[bytes, list[int]] = {}
                for token in tokens:
                    pairs.setdefault(runtime.pieces[token][:2], []).append(token)
                self.starting2.update({pair: np.array(ids, dtype=np.intc) for pair, ids in pairs.items()})
        self.eog_probe = min(runtime.eog) if runtime.eog else runtime.eos
        self.probe = _Candidates(np.array([*probe_ids, self.eog_probe]))

    # -- one token ---------------------------------------------------------------------------------

    def _logits(self) -> np.ndarray:
        return np.ctypeslib.as_array(self.rt.logits(), shape=(self.rt.n_vocab,))

    def _valid(self, grammar: Any, token: int) -> bool:
        self.single.ids[0] = token
        self.single.reset(0.0)
        C.llama_sampler_apply(grammar, self.single.ref)
        return math.isfinite(float(self.single.data["logit"][0]))

    def _sample(self, chain: Any, grammar: Any | None, grammar_first: bool, logits: np.ndarray | None = None) -> int:
        """One token from ``logits`` (default: the last decoded token's), as llama-server samples it."""
        if logits is None:
            logits = self._logits()
        self.full.reset(logits)
        if grammar is not None and grammar_first:  # the binding's way, kept to measure against
            C.llama_sampler_apply(grammar, self.full.ref)
        C.llama_sampler_apply(chain, self.full.ref)
        token = self.full.selected()
        if grammar is None or self._valid(grammar, token):
            return token
        # Rejected: mask the vocabulary with the grammar, then sample again. Only tokens starting with a byte
        # the grammar admits can pass (the probe tells which, cheaply), so only those are matched: the rest
        # would get probability 0 anyway, and the result is the same as masking the whole vocabulary.
        candidates = self._admissible(grammar)
        candidates.reset(logits[candidates.ids] if candidates is not self.full else logits)
        C.llama_sampler_apply(grammar, candidates.ref)
        C.llama_sampler_apply(chain, candidates.ref)
        token = candidates.selected()
        if not self._valid(grammar, token):
            raise BackendError("the grammar admits no continuation here (is it satisfiable?)")
        return token

    def _admissible(self, grammar: Any) -> _Candidates:
        """The tokens that may pass ``grammar`` now, judged by their first byte (two for the big buckets);
        the whole vocabulary when that rules out little."""
        allowed, eog = self._probe(grammar)
        buckets = []
        for byte in allowed:
            if bytes([byte]) in self.starting2:
                buckets += self._refined(grammar, byte)
            elif byte in self.starting:
                buckets.append(self.starting[byte])
        if eog:
            buckets.append(np.array(sorted(self.rt.eog), dtype=np.intc))
        if not buckets or sum(len(b) for b in buckets) > 0.8 * self.rt.n_vocab:
            return self.full
        return _Candidates(np.concatenate(buckets))

    def _refined(self, grammar: Any, byte: int) -> list[np.ndarray]:
        """Tokens starting with ``byte`` that may pass, judged by their first two bytes."""
        probe = C.llama_sampler_clone(grammar)
        try:
            C.llama_sampler_accept(probe, self.byte_token[byte])
            second, _ = self._probe(probe)
        finally:
            C.llama_sampler_free(probe)
        lead = bytes([byte])
        found = [self.starting2[lead + bytes([b])] for b in second if lead + bytes([b]) in self.starting2]
        return [*found, np.array([self.byte_token[byte]], dtype=np.intc)]

    # -- fast-forward --------------------------------------------------------------------------------

    def _probe(self, grammar: Any) -> tuple[set[int], bool]:
        """First bytes of what the grammar admits next, and whether it admits the end of generation."""
        self.probe.reset(0.0)
        C.llama_sampler_apply(grammar, self.probe.ref)
        allowed = self.probe.allowed()
        eog = self.eog_probe in allowed
        return {self.first_byte[t] for t in allowed if t != self.eog_probe}, eog

    def _single(self, allowed: set[int], eog: bool) -> int | None:
        """The one byte that must come next (and that we can feed the grammar), if there is one."""
        if eog or len(allowed) != 1:
            return None
        (byte,) = allowed
        return byte if byte in self.byte_token else None

    def forced(self, grammar: Any) -> tuple[list[int], bool]:
        """The canonical tokens of the text the grammar forces now (a draft), and whether it is complete."""
        allowed, eog = self._probe(grammar)
        if eog and not allowed:
            return [], True
        byte = self._single(allowed, eog)
        if byte is None:
            return [], False
        run = bytearray()
        probe = C.llama_sampler_clone(grammar)
        try:
            while byte is not None and len(run) < MAX_FORCED_BYTES:
                run.append(byte)
                C.llama_sampler_accept(probe, self.byte_token[byte])
                allowed, eog = self._probe(probe)
                byte = self._single(allowed, eog)
        finally:
            C.llama_sampler_free(probe)
        text = bytes(run).decode("utf-8", "ignore")  # stop before a half-forced character
        tokens = self.rt.tokenize(text, add_special=False, parse_special=False) if text else []
        if self.rt.detokenize(tokens) != text.encode("utf-8"):
            return [], False  # this tokenizer rewrites the text (e.g. adds a leading space): don't force
        return tokens, False

    # -- the loop ----------------------------------------------------------------------------------

    def generate(
        self,
        *,
        max_tokens: int,
        stop: tuple[str, ...],
        params: SamplingParams,
        grammar: Any | None,
        fast_forward: bool = False,
        grammar_first: bool = False,
    ) -> Generation:
        """Generate after the prompt the runtime holds (its last token's logits must be current)."""
        rt = self.rt
        gen = Generation()
        out = bytearray()
        longest_stop = max((len(s) for s in stop), default=0)
        checked = 0  # characters of text already searched for stop strings
        chain = build_chain(params, rt.n_vocab)
        for token in rt.tokens[-PENALTY_LAST_N:]:  # the prompt's tail is in the penalty window, as on llama-server
            C.llama_sampler_accept(chain, token)
        ff = fast_forward and grammar is not None
        pending: list[int] = []  # sampled tokens not yet decoded into the KV cache

        def take(token: int) -> None:
            if grammar is not None:
                C.llama_sampler_accept(grammar, token)
            C.llama_sampler_accept(chain, token)
            out.extend(rt.pieces[token])
            gen.tokens.append(token)

        try:
            while True:
                if pending:
                    rt.decode(pending)
                    pending = []
                if min(max_tokens - len(gen.tokens), rt.n_ctx - len(rt.tokens)) <= 0:
                    gen.finish_reason = "length"
                    break
                draft: list[int] = []
                if ff:
                    draft, complete = self.forced(grammar)
                    if complete:
                        gen.finish_reason = "stop"
                        break
                token = self._sample(chain, grammar, grammar_first)
                if token in rt.eog:
                    gen.finish_reason = "stop"
                    break
                take(token)
                pending = [token]
                if len(draft) > 1 and token == draft[0]:
                    pending, ended = self._verify(draft, chain, grammar, take, max_tokens - len(gen.tokens), gen)
                    if ended:
                        gen.finish_reason = "stop"
                        break
                if longest_stop:
                    text = out.decode("utf-8", "ignore")
                    hit = _find_stop(text, stop, max(0, checked - longest_stop))
                    checked = len(text)
                    if hit is not None:
                        gen.text = text[:hit]
                        gen.finish_reason = "stop"
                        return gen
        finally:
            C.llama_sampler_free(chain)
        gen.text = out.decode("utf-8", "replace")
        return gen

    def _verify(
        self, draft: list[int], chain: Any, grammar: Any, take: Callable[[int], None], budget: int, gen: Generation
    ) -> tuple[list[int], bool]:
        """The model sampled ``draft[0]``: decode the draft in one batch and sample each later position from its
        own logits. Returns the token still to decode (the first that left the draft; none when the model
        wrote all of it) and whether the model ended generation."""
        rt = self.rt
        start = len(rt.tokens)
        window = draft[: max(1, min(len(draft), budget + 1, rt.n_ctx - start))]
        rows = rt.decode_all(window)  # rows[j]: the logits after window[j]
        for j in range(1, len(window)):
            token = self._sample(chain, grammar, False, rows[j - 1])
            if token in rt.eog:
                rt.truncate(start + j)
                return [], True
            take(token)
            if token != window[j]:
                rt.truncate(start + j)  # the draft's tail is not what the model wrote
                return [token], False
            gen.drafted_tokens += 1
        return [], False  # the last row's logits are the runtime's current ones


def _find_stop(text: str, stop: tuple[str, ...], start: int) -> int | None:
    hits = [i for i in (text.find(s, start) for s in stop if s) if i >= 0]
    return min(hits) if hits else None
