"""``memgpt doctor`` (``memgpt configure --check``): probe a backend and say what works and how to fix what does not.

Everything here goes through the ``Backend`` interface only (``check``, ``count_tokens``, ``complete``,
``capabilities``), so every backend plugin, a third party's included, is diagnosed the same way:

- **reachable**: ``check()`` is ok (for an in-process backend: the model file was found and loads);
- **model** and **context size**: what ``check()`` reports, compared with the configured context window;
- **tokenizer**: exact or estimated, from ``capabilities.tokenizer``; an exact one must count a text without
  failing and, where the server's usage is exact, agree with the server's own count of the probe prompt;
- **constraints**: every constraint kind is probed with a tiny completion constrained to one JSON object
  holding a random word the prompt never shows. Without the constraint the model cannot write that word,
  so the answer tells whether the kind is honoured, whatever the backend declares.

``diagnose`` never raises: a backend that raises where it must not is itself a finding.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import string
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from memgpt.contract.backend import NOT_STATED, Backend, BackendSettings, BackendSpec
from memgpt.contract.types import BackendStatus, CompletionRequest, Constraint, ConstraintKind, SamplingParams

#: Every constraint kind a backend may declare, in the order they are probed when none is declared.
ALL_KINDS: tuple[ConstraintKind, ...] = get_args(ConstraintKind)
#: The context size the agent assumes when neither the config nor the backend tells (runtime.FALLBACK_CONTEXT).
ASSUMED_CONTEXT = 4096
#: Tokens a constraint probe may use: the expected answer is about a dozen.
PROBE_MAX_TOKENS = 32
#: The key of the probe's JSON object.
PROBE_KEY = "probe"
PROBE_PROMPT = "Here is a short story about a cat and a dog.\n\nOnce upon a time,"
GREEDY = SamplingParams(temperature=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, seed=7)

Verdict = Literal["honoured", "ignored", "failed", "inconclusive"]


@dataclass(frozen=True)
class Problem:
    """Something that does not work (or works worse than it could), and what to do about it."""

    check: str  # "reachable", "context", "tokenizer", "constraint"
    problem: str
    fix: str
    severity: Literal["problem", "warning"] = "problem"


@dataclass(frozen=True)
class ConstraintProbe:
    """What one constrained probe showed."""

    kind: ConstraintKind
    declared: bool
    verdict: Verdict
    detail: str
    seconds: float | None = None

    @property
    def honoured(self) -> bool:
        return self.verdict == "honoured"


@dataclass
class Report:
    """Everything ``diagnose`` found; ``ok`` is false when any problem (not a mere warning) was found."""

    backend: str
    endpoint: str | None
    in_process: bool
    verified: str | None = None
    reachable: bool = False
    reachable_detail: str = ""
    check_seconds: float | None = None
    model: str | None = None
    context_window: int | None = None
    context_source: Literal["backend", "config", "assumed"] = "assumed"
    configured_context_window: int | None = None
    threads: int | None = None
    tokenizer: Literal["exact", "estimated", "failed", "not checked"] = "not checked"
    tokenizer_detail: str = ""
    probe_prompt_tokens: int | None = None
    tokens_cross_checked: bool = False
    constraints: list[ConstraintProbe] = field(default_factory=list)
    constraint_used: ConstraintKind | None = None
    problems: list[Problem] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(p.severity == "problem" for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        data["constraint_honoured"] = self.constraint_used if self._used_is_honoured() else None
        for probe in data["constraints"]:
            probe["honoured"] = probe["verdict"] == "honoured"
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def _used_is_honoured(self) -> bool:
        return any(p.kind == self.constraint_used and p.honoured for p in self.constraints)

    def lines(self) -> list[str]:
        """The report as a person reads it: one row per check, then each problem with its fix."""
        where = self.endpoint or "in process"
        out = [f"memgpt doctor: backend {self.backend} ({where})"]

        def row(mark: str, label: str, text: str) -> None:
            out.append(f"  {mark} {label:<11} {text}")

        failed = {p.check for p in self.problems if p.severity == "problem"}
        warned = {p.check for p in self.problems if p.severity == "warning"}

        def mark(check: str) -> str:
            return "✗" if check in failed else "!" if check in warned else "✓"

        took = ""
        if self.check_seconds is not None:
            took = f" in {self.check_seconds * 1000:.0f} ms" if self.check_seconds < 1 else f" in {self.check_seconds:.1f} s"
        if self.in_process:
            label, yes = "model file", f"found and loaded{took}"
        else:
            label, yes = "reachable", f"yes, answered{took}"
        row(mark("reachable"), label, yes if self.reachable else f"no: {self.reachable_detail}")
        if self.reachable:
            row("✓" if self.model else "·", "model", self.model or "(the backend does not say)")
            if self.in_process:
                row("·", "threads", str(self.threads) if self.threads else "the backend's default")
                if self.reachable_detail:
                    row("·", "runs", self.reachable_detail)
            row(mark("context"), "context", self._context_text())
            row(
                mark("tokenizer"),
                "tokenizer",
                f"{self.tokenizer}" + (f": {self.tokenizer_detail}" if self.tokenizer_detail else ""),
            )
            for probe in self.constraints:
                used = " (used)" if probe.kind == self.constraint_used else ""
                if probe.declared or probe.honoured:
                    sign = "✓" if probe.honoured else "✗" if used else "!"
                    undeclared = "" if probe.declared else ", though the backend does not declare it"
                    row(sign, "constraint", f"{probe.kind}{used}: {probe.verdict}{undeclared} ({probe.detail})")
                else:
                    row("·", "constraint", f"{probe.kind}: not declared by the backend, and the probe came back unconstrained")
            if not self.constraints:
                row("·", "constraint", "not probed")
        if self.verified:
            row("·", "verified", "not stated by the plugin" if self.verified == NOT_STATED else f"against {self.verified}")
        problems = [p for p in self.problems if p.severity == "problem"]
        warnings = [p for p in self.problems if p.severity == "warning"]
        for title, items in (("problem", problems), ("warning", warnings)):
            if items:
                out.append(f"{len(items)} {title}{'s' * (len(items) != 1)}:")
                for p in items:
                    out.append(f"  {'✗' if title == 'problem' else '!'} {p.check}: {p.problem}")
                    out.append(f"    fix: {p.fix}")
        if not problems:
            out.append("No problems found." if not warnings else "No problems found (see the warnings).")
        return out

    def _context_text(self) -> str:
        if self.context_source == "backend":
            text = f"{self.context_window} tokens (reported by the backend)"
            if self.configured_context_window and self.configured_context_window != self.context_window:
                text += f"; config says {self.configured_context_window}"
            return text
        if self.context_source == "config":
            return f"{self.context_window} tokens (from the config; the backend does not report it)"
        return f"unknown: the backend does not report it and the config does not set it; the agent assumes {ASSUMED_CONTEXT}"


def probe_constraint(kind: ConstraintKind, word: str) -> Constraint:
    """A constraint of ``kind`` that admits exactly ``{"probe": "<word>"}`` (with optional spaces)."""
    if kind == "gbnf":
        return Constraint(gbnf=f'root ::= "{{" ws "\\"{PROBE_KEY}\\":" ws "\\"{word}\\"" ws "}}"\nws ::= [ ]?\n')
    schema = {
        "type": "object",
        "properties": {PROBE_KEY: {"type": "string", "enum": [word]}},
        "required": [PROBE_KEY],
        "additionalProperties": False,
    }
    return Constraint(json_schema=schema)


def random_word(length: int = 7) -> str:
    """Lowercase letters and digits no prompt suggests; starts with a letter."""
    alphabet = string.ascii_lowercase + string.digits
    return secrets.choice("qxzjvk") + "".join(secrets.choice(alphabet) for _ in range(length - 1))


def judge(text: str, word: str, finish: str) -> tuple[Verdict, str]:
    """Whether ``text`` is the constrained answer holding ``word``; with a short reason."""
    squeezed = "".join(text.split())
    expected = f'{{"{PROBE_KEY}":"{word}"}}'
    if squeezed == expected:
        return "honoured", f"answered {text.strip()!r}"
    if word in text:
        return "honoured", f"the random word came back, in {_snippet(text)}"
    if finish == "length" and expected.startswith(squeezed):
        return "inconclusive", f"cut at {PROBE_MAX_TOKENS} tokens before the answer: {_snippet(text)}"
    return "ignored", f"answered {_snippet(text)}, not {expected}"


def _snippet(text: str, limit: int = 40) -> str:
    one_line = " ".join(text.split())
    return repr(one_line if len(one_line) <= limit else one_line[: limit - 1] + "…")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:299] + "…"


@contextlib.contextmanager
def _captured_logs(into: list[str]) -> Iterator[None]:
    """Keep the backends' warnings off the screen (they are findings here); put them in ``into``."""

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            with contextlib.suppress(Exception):
                into.append(f"{record.levelname.lower()}: {record.name}: {record.getMessage()}")

    root = logging.getLogger()
    handler = Collect(level=logging.WARNING)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)


def diagnose(
    backend: Backend,
    *,
    name: str,
    endpoint: str | None = None,
    in_process: bool = False,
    settings: BackendSettings | None = None,
    verified: str | None = None,
    fix_command: str | None = None,
) -> Report:
    """Probe ``backend`` and return what was found. Never raises (except KeyboardInterrupt)."""
    settings = settings or BackendSettings()
    report = Report(
        backend=name,
        endpoint=endpoint,
        in_process=in_process,
        verified=verified,
        configured_context_window=settings.context_window,
        threads=settings.threads,
    )
    configure = fix_command or f"memgpt configure --backend {name}"
    with _captured_logs(report.log):
        status = _reachable(backend, report, configure)
        if status is None:
            return report
        _context(status, report, configure)
        _tokenizer(backend, report)
        _constraints(backend, report)
    return report


def _reachable(backend: Backend, report: Report, configure: str) -> BackendStatus | None:
    started = time.perf_counter()
    try:
        status = backend.check()
    except Exception as exc:  # check() must never raise: say so, in one line
        status = BackendStatus(ok=False, detail=f"check() raised {type(exc).__name__}: {_one_line(exc)}")
    report.check_seconds = time.perf_counter() - started
    if not isinstance(status, BackendStatus):
        status = BackendStatus(ok=False, detail=f"check() returned {type(status).__name__}, not a BackendStatus")
    report.reachable = status.ok
    report.reachable_detail = " ".join(status.detail.split())
    if status.endpoint:
        report.endpoint = status.endpoint
    if not status.ok:
        if report.in_process:
            fix = f"give a GGUF file that exists and loads: {configure} --model /path/to/model.gguf"
            what = "the model could not be loaded"
        else:
            fix = f"start the server, or point memgpt at the right URL: {configure} --model-endpoint http://HOST:PORT"
            what = f"no answer from {report.endpoint or 'the server'}"
        report.problems.append(Problem("reachable", f"{what}: {report.reachable_detail or 'no detail given'}", fix))
        return None
    report.model = status.model
    return status


def _context(status: BackendStatus, report: Report, configure: str) -> None:
    served, configured = status.context_window, report.configured_context_window
    if served:
        report.context_window, report.context_source = served, "backend"
        if configured and configured > served:
            report.problems.append(
                Problem(
                    "context",
                    f"the config says {configured} tokens but the backend runs with {served}: prompts over {served} tokens will fail",
                    f"{configure} --context-window {served}, or give the server a context of {configured} or more",
                )
            )
    elif configured:
        report.context_window, report.context_source = configured, "config"
    else:
        report.context_window, report.context_source = ASSUMED_CONTEXT, "assumed"
        report.problems.append(
            Problem(
                "context",
                f"the backend does not report its context size and none is configured; the agent assumes {ASSUMED_CONTEXT} tokens",
                f"{configure} --context-window N, with N the context the server was started with",
                severity="warning",
            )
        )


def _tokenizer(backend: Backend, report: Report) -> None:
    exact = bool(getattr(backend.capabilities, "tokenizer", False))
    try:
        count = backend.count_tokens(PROBE_PROMPT)
    except Exception as exc:
        report.tokenizer = "failed"
        report.tokenizer_detail = f"counting a text failed: {_one_line(exc)}"
        report.problems.append(
            Problem(
                "tokenizer",
                f"the backend could not count tokens ({_one_line(exc)})",
                "update the server (its tokenizer endpoint failed), or report it to the backend plugin's authors",
            )
        )
        return
    if not isinstance(count, int) or isinstance(count, bool) or count <= 0:
        report.tokenizer = "failed"
        report.tokenizer_detail = f"count_tokens returned {count!r} for a {len(PROBE_PROMPT)}-character text"
        report.problems.append(
            Problem(
                "tokenizer", report.tokenizer_detail, "report it to the backend plugin's authors: a count must be a positive int"
            )
        )
        return
    report.tokenizer = "exact" if exact else "estimated"
    report.tokenizer_detail = (
        f"the backend's own tokenizer counts the probe prompt as {count} tokens"
        if exact
        else f"~{count} tokens for the probe prompt, guessed from its length (the agent keeps a margin)"
    )
    report.probe_prompt_tokens = count


def _cross_check_tokens(report: Report, usage: Any) -> None:
    """An exact tokenizer must agree with the prompt tokens an exact usage reports (one BOS token aside)."""
    counted = report.probe_prompt_tokens
    if report.tokenizer != "exact" or counted is None or not getattr(usage, "exact", False):
        return
    served = getattr(usage, "prompt_tokens", 0)
    if not isinstance(served, int) or served <= 0:
        return
    report.tokens_cross_checked = True
    if abs(served - counted) <= 1:
        report.tokenizer_detail += f", and the server's usage agrees ({served})"
        return
    report.problems.append(
        Problem(
            "tokenizer",
            f"the backend counts the probe prompt as {counted} tokens but the server reports {served}",
            "report it to the backend plugin's authors: its count_tokens does not use the server's tokenizer",
        )
    )


def _constraints(backend: Backend, report: Report) -> None:
    declared: Sequence[ConstraintKind] = tuple(getattr(backend.capabilities, "constraints", ()) or ())
    kinds = [*declared, *(k for k in ALL_KINDS if k not in declared)]
    report.constraint_used = declared[0] if declared else None
    for kind in kinds:
        probe = _probe(backend, kind, kind in declared, report)
        report.constraints.append(probe)
    by_kind = {p.kind: p for p in report.constraints}
    honoured = [p.kind for p in report.constraints if p.honoured]
    for kind in declared:
        probe = by_kind[kind]
        used = kind == report.constraint_used
        consequence = (
            "the agent's calls would be free text, repaired after the fact"
            if used
            else f"the agent uses {report.constraint_used}, so this one is never sent"
        )
        severity: Literal["problem", "warning"] = "problem" if used else "warning"
        if probe.verdict == "ignored":
            report.problems.append(
                Problem(
                    "constraint",
                    f"the backend declares {kind} but the server did not apply it: {consequence}",
                    _ignored_fix(kind, honoured, declared),
                    severity,
                )
            )
        elif probe.verdict == "failed":
            report.problems.append(
                Problem(
                    "constraint",
                    f"a {kind}-constrained completion failed ({probe.detail}): {consequence}",
                    _ignored_fix(kind, honoured, declared),
                    severity,
                )
            )
        elif probe.verdict == "inconclusive":
            report.problems.append(
                Problem(
                    "constraint",
                    f"the {kind} probe was cut off before its answer ({probe.detail})",
                    "run the check again; if it repeats, the server spends the constrained tokens on whitespace",
                    severity="warning",
                )
            )
    if not declared:
        report.problems.append(
            Problem(
                "constraint",
                "the backend declares no constraint kind: the agent's calls are free text, repaired after the fact",
                f"use a backend that constrains output{' (this server honours ' + ', '.join(honoured) + ')' if honoured else ''}",
                severity="warning" if not honoured else "problem",
            )
        )
    for kind in honoured:
        if kind not in declared:
            report.problems.append(
                Problem(
                    "constraint",
                    f"the server honours {kind}, which the backend does not declare (Capabilities.constraints)",
                    "report it to the backend plugin's authors: declaring it would let the agent use it",
                    severity="warning",
                )
            )


def _ignored_fix(kind: ConstraintKind, honoured: list[ConstraintKind], declared: Sequence[ConstraintKind]) -> str:
    others = [k for k in honoured if k in declared and k != kind]
    if others and kind == declared[0]:
        return f"the server honours {others[0]}: report it to the backend plugin's authors so it prefers that one"
    return (
        f"update the server to a version that applies {kind} constraints (an old build ignores the field), "
        "or choose a backend whose server does (`memgpt configure`)"
    )


def _probe(backend: Backend, kind: ConstraintKind, declared: bool, report: Report) -> ConstraintProbe:
    word = random_word()
    request = CompletionRequest(
        prompt=PROBE_PROMPT, max_tokens=PROBE_MAX_TOKENS, sampling=GREEDY, constraint=probe_constraint(kind, word)
    )
    started = time.perf_counter()
    try:
        completion = backend.complete(request)
    except Exception as exc:
        return ConstraintProbe(kind, declared, "failed", f"{type(exc).__name__}: {_one_line(exc)}", time.perf_counter() - started)
    seconds = time.perf_counter() - started
    if not report.tokens_cross_checked:
        _cross_check_tokens(report, completion.usage)
    verdict, detail = judge(completion.text, word, completion.finish_reason)
    return ConstraintProbe(kind, declared, verdict, detail, round(seconds, 2))


def doctor(
    spec: BackendSpec,
    settings: BackendSettings,
    *,
    fix_command: str | None = None,
    on_open: Callable[[Backend], None] | None = None,
) -> Report:
    """Open the backend ``spec`` with ``settings``, diagnose it, close it. Never raises for a backend that fails."""
    endpoint = settings.endpoint if spec.needs_endpoint else None
    in_process = not spec.needs_endpoint
    try:
        backend = spec.factory(settings)
    except Exception as exc:
        report = Report(
            backend=spec.name,
            endpoint=endpoint,
            in_process=in_process,
            verified=spec.verified_against,
            configured_context_window=settings.context_window,
            threads=settings.threads,
        )
        report.reachable_detail = f"the backend could not be opened: {_one_line(exc)}"
        report.problems.append(
            Problem(
                "reachable",
                report.reachable_detail,
                f"check the settings ({fix_command or 'memgpt configure'}), or see `memgpt plugins` for the plugin's state",
            )
        )
        return report
    try:
        if on_open is not None:
            on_open(backend)
        return diagnose(
            backend,
            name=spec.name,
            endpoint=endpoint,
            in_process=in_process,
            settings=settings,
            verified=spec.verified_against,
            fix_command=fix_command,
        )
    finally:
        with contextlib.suppress(Exception):
            backend.close()
