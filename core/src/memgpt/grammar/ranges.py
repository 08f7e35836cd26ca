"""Integer ranges as GBNF: the canonical decimal integers between two bounds, digit by digit, so a grammar
admits exactly the integers a schema's ``minimum`` / ``maximum`` (and exclusive forms) allow."""

from __future__ import annotations

from typing import Any

from memgpt.errors import GrammarError

MAX_INT_DIGITS = 16  # an integer without a bound has at most this many digits


def int_bounds(schema: dict[str, Any], path: str) -> tuple[int | None, int | None]:
    def bound(key: str, exclusive: str, step: int) -> int | None:
        value = schema.get(key)
        out = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out = _ceil(value) if step > 0 else _floor(value)
        ex = schema.get(exclusive)
        if isinstance(ex, (int, float)) and not isinstance(ex, bool):
            ex_bound = (_floor(ex) + 1) if step > 0 else (_ceil(ex) - 1)
            out = ex_bound if out is None else (max(out, ex_bound) if step > 0 else min(out, ex_bound))
        return out

    low, high = bound("minimum", "exclusiveMinimum", 1), bound("maximum", "exclusiveMaximum", -1)
    if low is not None and high is not None and high < low:
        raise GrammarError(f"{path}: no integer lies between minimum {low} and maximum {high}")
    return low, high


def _ceil(value: float) -> int:
    return int(value) if value == int(value) else int(value) + (1 if value > 0 else 0)


def _floor(value: float) -> int:
    return int(value) if value == int(value) else int(value) - (1 if value < 0 else 0)


def int_range_gbnf(low: int | None, high: int | None) -> str:
    """GBNF alternatives for the canonical decimal integers in ``[low, high]`` (``None`` = unbounded,
    meaning at most ``MAX_INT_DIGITS`` digits)."""
    cap = 10**MAX_INT_DIGITS - 1
    lo = -cap if low is None else low
    hi = cap if high is None else high
    alternatives: list[str] = []
    if lo < 0:
        negative_low, negative_high = max(1, -hi), -lo  # magnitudes
        if negative_low <= negative_high:
            alternatives += [f'"-" {alt}' for alt in _natural_range(negative_low, negative_high)]
    if hi >= 0:
        alternatives += _natural_range(max(lo, 0), hi)
    return " | ".join(alternatives)


def _natural_range(lo: int, hi: int) -> list[str]:
    """Alternatives for ``lo..hi`` (``0 <= lo <= hi``) written without leading zeros."""
    out: list[str] = []
    if lo == 0:
        out.append('"0"')
        lo = 1
        if hi == 0:
            return out
    full_lengths: list[int] = []
    for length in range(len(str(lo)), len(str(hi)) + 1):
        start = lo if length == len(str(lo)) else 10 ** (length - 1)
        end = hi if length == len(str(hi)) else 10**length - 1
        if start == 10 ** (length - 1) and end == 10**length - 1 and length > 1:
            full_lengths.append(length)  # every number of this length: merged below
            continue
        out += _same_length(str(start), str(end))
    if full_lengths:
        # Consecutive full lengths L1..L2 are "[1-9] [0-9]{L1-1,L2-1}".
        first, last = full_lengths[0], full_lengths[-1]
        out.append(f"[1-9] [0-9]{{{first - 1},{last - 1}}}" if first != last else f"[1-9] [0-9]{{{first - 1}}}")
    return out


def _digits(a: str, b: str) -> str:
    return f'"{a}"' if a == b else f"[{a}-{b}]"


def _any_digits(n: int) -> list[str]:
    return [] if n == 0 else (["[0-9]"] if n == 1 else [f"[0-9]{{{n}}}"])


def _same_length(a: str, b: str) -> list[str]:
    """Alternatives for the numbers a..b, both strings of the same length, a <= b."""
    if len(a) == 1:
        return [_digits(a, b)]
    if a[0] == b[0]:
        return [f'"{a[0]}" {rest}' for rest in _same_length(a[1:], b[1:])]
    n = len(a) - 1
    out: list[str] = []
    first_low, first_high = int(a[0]), int(b[0])
    if a[1:] != "0" * n:
        out += [f'"{a[0]}" {rest}' for rest in _same_length(a[1:], "9" * n)]
        first_low += 1
    tail_full = b[1:] == "9" * n
    mid_high = first_high if tail_full else first_high - 1
    if first_low <= mid_high:
        out.append(" ".join([_digits(str(first_low), str(mid_high)), *_any_digits(n)]))
    if not tail_full:
        out += [f'"{b[0]}" {rest}' for rest in _same_length("0" * n, b[1:])]
    return out


__all__ = ["MAX_INT_DIGITS", "int_bounds", "int_range_gbnf"]
