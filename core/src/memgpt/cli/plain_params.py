"""Parameters whose values typer hands over as given, without importing pydantic for them.

typer (0.2x and later) coerces every parameter value through a pydantic ``TypeAdapter``, built when the
command first processes that parameter, even one left unset: for a ``str`` that is text already, or a flag
that is a ``bool`` already, the adapter returns the very value it was given, yet building it imports pydantic,
which costs a short command such as ``memgpt list agents`` most of its start-up. ``PlainTextCommand`` and
``PlainTextGroup`` give each parameter a coercion that returns such a value as it is and builds typer's own
for anything else (a number, a path, a ``str`` parameter with a ``parser``), so every command gets the values
it got before. With a typer whose internals differ they change nothing.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperCommand, TyperGroup

try:
    from typer._coercion import RuntimeParam, build_runtime_param
except ImportError:  # a typer without pydantic coercion: nothing to avoid
    RuntimeParam = None  # type: ignore[assignment,misc]


if RuntimeParam is not None:

    class _Deferred(RuntimeParam):
        """typer's coercion, built only for a value it could change."""

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if getattr(self.parameter_info, "parser", None) is None and (
                (self.annotation is str and type(value) is str) or (self.annotation is bool and type(value) is bool)
            ):
                return value  # what typer's adapter returns for these: the same object
            full = build_runtime_param(param.type_descriptor)
            param._runtime_param = full
            return full._coerce_value(value, param=param, ctx=ctx)


def defer(param: Any) -> bool:
    """Give ``param`` the deferred coercion if it is a typer parameter whose coercion is not built yet."""
    descriptor = getattr(param, "type_descriptor", None)
    if RuntimeParam is None or descriptor is None or getattr(param, "_runtime_param", True) is not None:
        return False
    try:
        deferred = _Deferred(parameter_info=descriptor.parameter_info, annotation=descriptor.annotation)
    except Exception:  # typer's internals changed shape: leave its own coercion in place
        return False
    param._runtime_param = deferred
    return True


class _Deferring:
    """Defers the coercion of every parameter of the command or group it is mixed into, its help option too."""

    params: list[Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            defer(param)

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        defer(option)
        return option


class PlainTextCommand(_Deferring, TyperCommand):
    """A typer command that imports pydantic only for a value typer's coercion could change."""


class PlainTextGroup(_Deferring, TyperGroup):
    """``PlainTextCommand`` for the group's own options (``memgpt --version``)."""
