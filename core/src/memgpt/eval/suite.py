"""Suites as data: what a suite file may hold, read into frozen dataclasses with one-line errors."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from memgpt.errors import ConfigError

#: Memory functions a check may name in ``use``; ``core_memory`` means the answer was in core memory
#: when the question was asked (the agent saved it there earlier).
KNOWN_USES = frozenset(
    {"core_memory", "conversation_search", "conversation_search_date", "archival_memory_search", "archival_memory_insert"}
)


@dataclass(frozen=True)
class Check:
    """What a turn must achieve to count as a success."""

    expect: tuple[str, ...] = ()  # any of these, normalised, in what the agent said with send_message
    use: tuple[str, ...] = ()  # at least one of these memory functions (see KNOWN_USES)
    min_searches: int = 0  # searches made in the turn
    robust: bool = False  # valid calls only, nothing unregistered run, no error, a reply


@dataclass(frozen=True)
class Turn:
    say: str
    kind: str = "chat"  # "fact" (something to remember), "filler", "check"
    pad: str = ""  # appended ``pad_times`` times (a huge paste)
    pad_times: int = 0
    check: Check | None = None
    #: What a model that makes the right calls does in this turn (for the oracle backend in tests and
    #: for documentation): a list of {"call": NAME, ...arguments}. Never used to score.
    plan: tuple[dict[str, Any], ...] = ()
    fill: bool = False  # sent by the runner to push facts out of the window, beyond the planned turns

    @property
    def text(self) -> str:
        return self.say + (" " + " ".join([self.pad] * self.pad_times) if self.pad_times else "")


@dataclass(frozen=True)
class Session:
    turns: tuple[Turn, ...]
    #: Filler turns sent (in a cycle) after ``turns`` until no "fact" turn is left in the context window.
    fill: tuple[str, ...] = ()
    fill_max: int = 0


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    sessions: tuple[Session, ...]
    documents: tuple[tuple[str, str], ...] = ()  # (file name, text), loaded like `memgpt load`
    context_window: int | None = None
    max_tokens: int | None = None
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def checks(self) -> int:
        return sum(t.check is not None for s in self.sessions for t in s.turns)


def builtin_suites() -> list[str]:
    root = resources.files("memgpt.eval") / "suites"
    return sorted(p.name.removesuffix(".json") for p in root.iterdir() if p.name.endswith(".json"))


def load_suite(name_or_path: str) -> Suite:
    """A built-in suite by name, or a suite file (JSON, or YAML when PyYAML is installed)."""
    path = Path(name_or_path)
    if name_or_path in builtin_suites():
        text = (resources.files("memgpt.eval") / "suites" / f"{name_or_path}.json").read_text(encoding="utf-8")
        source = f"built-in suite {name_or_path}"
    elif path.suffix.lower() in (".json", ".yaml", ".yml") or path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read suite file {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"suite file {path} is not UTF-8 text") from None
        source = str(path)
    else:
        raise ConfigError(
            f"no suite named {name_or_path!r}: the built-in ones are {', '.join(builtin_suites())}, or give a file path"
        )
    return parse_suite(_decode(text, source, yaml=path.suffix.lower() in (".yaml", ".yml")), source)


def _decode(text: str, source: str, *, yaml: bool) -> Any:
    if yaml:
        try:
            import yaml as pyyaml
        except ImportError:
            raise ConfigError(f"{source}: YAML suites need PyYAML (pip install pyyaml), or write the suite as JSON") from None
        try:
            return pyyaml.safe_load(text)
        except pyyaml.YAMLError as exc:
            raise ConfigError(f"{source} is not valid YAML: {str(exc).splitlines()[0]}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(f"{where} must be a string or a list of strings")


def _int(value: Any, where: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{where} must be an integer >= {low}")
    return value


def _turn(data: Any, where: str) -> Turn:
    if isinstance(data, str):
        return Turn(say=data)
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be a string or an object with `say`")
    unknown = set(data) - {"say", "kind", "pad", "pad_times", "expect", "use", "min_searches", "robust", "plan"}
    if unknown:
        raise ValueError(f"{where} has unknown field(s) {', '.join(sorted(unknown))}")
    say = data.get("say")
    if not isinstance(say, str) or not say.strip():
        raise ValueError(f"{where}.say must be a non-empty string")
    kind = data.get("kind", "chat")
    if kind not in ("chat", "fact", "filler", "check"):
        raise ValueError(f"{where}.kind must be chat, fact, filler or check")
    check = None
    if any(k in data for k in ("expect", "use", "min_searches", "robust")):
        use = _strings(data.get("use", []), f"{where}.use")
        bad = [u for u in use if u not in KNOWN_USES]
        if bad:
            raise ValueError(f"{where}.use names {', '.join(bad)}; known: {', '.join(sorted(KNOWN_USES))}")
        robust = data.get("robust", False)
        if not isinstance(robust, bool):
            raise ValueError(f"{where}.robust must be true or false")
        check = Check(
            expect=_strings(data.get("expect", []), f"{where}.expect"),
            use=use,
            min_searches=_int(data.get("min_searches", 0), f"{where}.min_searches"),
            robust=robust,
        )
        kind = "check"
    plan = data.get("plan", [])
    if not isinstance(plan, list) or not all(isinstance(p, dict) and isinstance(p.get("call"), str) for p in plan):
        raise ValueError(f"{where}.plan must be a list of objects with `call`")
    pad = data.get("pad", "")
    if not isinstance(pad, str):
        raise ValueError(f"{where}.pad must be a string")
    return Turn(
        say=say, kind=kind, pad=pad, pad_times=_int(data.get("pad_times", 0), f"{where}.pad_times"), check=check, plan=tuple(plan)
    )


def parse_suite(data: Any, source: str = "suite") -> Suite:
    try:
        if not isinstance(data, dict):
            raise ValueError("the top level must be an object")
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError("`name` must be a non-empty string")
        sessions_data = data.get("sessions")
        if not isinstance(sessions_data, list) or not sessions_data:
            raise ValueError("`sessions` must be a non-empty list")
        sessions = []
        for i, s in enumerate(sessions_data):
            where = f"sessions[{i}]"
            if not isinstance(s, dict) or not isinstance(s.get("turns"), list) or not s["turns"]:
                raise ValueError(f"{where} must be an object with a non-empty `turns` list")
            turns = tuple(_turn(t, f"{where}.turns[{j}]") for j, t in enumerate(s["turns"]))
            fill = _strings(s.get("fill", []), f"{where}.fill")
            fill_max = _int(s.get("fill_max", 12 if fill else 0), f"{where}.fill_max")
            sessions.append(Session(turns=turns, fill=fill, fill_max=fill_max))
        documents = []
        for i, d in enumerate(data.get("documents", [])):
            if not isinstance(d, dict) or not isinstance(d.get("name"), str) or not isinstance(d.get("text"), str):
                raise ValueError(f"documents[{i}] must be an object with `name` and `text` strings")
            if Path(d["name"]).name != d["name"] or not d["name"].strip():
                raise ValueError(f"documents[{i}].name must be a plain file name")
            documents.append((d["name"], d["text"]))
        window = data.get("context_window")
        max_tokens = data.get("max_tokens")
        suite = Suite(
            name=name,
            description=str(data.get("description", "")),
            sessions=tuple(sessions),
            documents=tuple(documents),
            context_window=None if window is None else _int(window, "context_window", 256),
            max_tokens=None if max_tokens is None else _int(max_tokens, "max_tokens", 16),
            source=source,
        )
        if suite.checks == 0:
            raise ValueError("no turn has a check (`expect`, `use`, `min_searches` or `robust`): nothing would be scored")
        return suite
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None
