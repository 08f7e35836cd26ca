"""Discovery and registration: real entry points for the installed plugins, in-memory modules for the
failure cases (a plugin that is just a namespace with hook functions, as pluggy sees any module)."""

from __future__ import annotations

import inspect
import subprocess
import sys
import types
from typing import Any

import pytest

from memgpt import hookimpl, hookspecs
from memgpt.contract import WrapperSpec
from memgpt.errors import UnknownNameError
from memgpt.plugins import KINDS, build_registry, get_registry, reset_registry
from memgpt.storage import StorageSpec

BUILTIN = {"core", "webui", "llamacpp", "koboldcpp", "lmstudio", "vllm", "wrappers-builtin"}


def plugin(name: str, **hooks: Any) -> tuple[str, types.ModuleType]:
    module = types.ModuleType(f"fake_{name}")
    for hook_name, function in hooks.items():
        function.__name__ = hook_name
        setattr(module, hook_name, hookimpl(function))
    return name, module


def wrapper_spec(name: str) -> WrapperSpec:
    return WrapperSpec(name=name, factory=lambda options: None)  # type: ignore[arg-type,return-value]


def test_installed_builtin_plugins_are_discovered_with_their_distributions() -> None:
    registry = get_registry()
    found = {p.name: p for p in registry.plugins}
    assert BUILTIN <= set(found), registry.failures
    assert found["webui"].distribution == "memgpt-backend-webui"
    assert found["wrappers-builtin"].distribution == "memgpt-wrappers-builtin"
    assert found["core"].distribution == "memgpt"
    assert all(found[name].version for name in BUILTIN)
    assert not [f for f in registry.failures if f.plugin in BUILTIN]


def test_load_plugins_env_limits_discovery(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMGPT_LOAD_PLUGINS", "webui, vllm")
    reset_registry()
    assert {p.name for p in get_registry().plugins} == {"core", "webui", "vllm"}  # core's defaults always load
    monkeypatch.setenv("MEMGPT_LOAD_PLUGINS", "")
    reset_registry()
    assert [p.name for p in get_registry().plugins] == ["core"]


def test_core_defaults_load_even_when_disabled_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMGPT_DISABLE_PLUGINS", "core,webui")
    reset_registry()
    registry = get_registry()
    assert "core" in {p.name for p in registry.plugins} and "webui" not in {p.name for p in registry.plugins}
    assert registry.storage and registry.functions and registry.grammars


def test_disable_plugins_env_removes_named_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMGPT_DISABLE_PLUGINS", "koboldcpp")
    reset_registry()
    names = {p.name for p in get_registry().plugins}
    assert "koboldcpp" not in names and "webui" in names


def test_discovery_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys; from memgpt.plugins import get_registry; r = get_registry(); "
        "assert r.plugins, r.failures; "
        "print(','.join(m for m in ('llama_cpp', 'torch', 'sentence_transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_hook_register_wrappers_collects_specs_with_their_plugin() -> None:
    registry = build_registry([plugin("alpha", register_wrappers=lambda register: register(wrapper_spec("w1")))])
    assert registry.wrapper("w1").plugin == "alpha"
    assert registry.plugins[0].registered == {"wrappers": ["w1"]}


def registered_by(hook: str, spec: Any, kind: str) -> Any:
    registry = build_registry([plugin("p", **{hook: lambda register: register(spec)})])
    assert registry.failures == []
    found = registry.get(kind, spec.name)
    assert found.name == spec.name and found.plugin == "p"
    return found


def test_registering_leaves_the_plugins_spec_as_it_declared_it() -> None:
    """A plugin's spec is often a module constant its backend class names too: the registry keeps a copy with
    the plugin and the guarded factory, so a second registry sees the spec as declared."""
    from memgpt.contract import BackendSpec

    def factory(settings: Any) -> None:
        return None

    spec = BackendSpec(name="shared", factory=factory)  # type: ignore[arg-type]
    first = build_registry([plugin("one", register_backends=lambda register: register(spec))])
    second = build_registry([plugin("two", register_backends=lambda register: register(spec))])
    assert (first.backend("shared").plugin, second.backend("shared").plugin) == ("one", "two")
    assert spec.plugin in (None, "") and spec.factory is factory


def test_hook_register_backends() -> None:
    from memgpt.contract import BackendSpec

    registered_by("register_backends", BackendSpec(name="b", factory=lambda s: None), "backends")  # type: ignore[arg-type,return-value]


def test_hook_register_grammars() -> None:
    from memgpt.contract import Constraint
    from memgpt.grammar import GrammarSpec

    registered_by("register_grammars", GrammarSpec(name="g", build=lambda f, s: Constraint()), "grammars")


def test_hook_register_storage() -> None:
    registered_by("register_storage", StorageSpec(name="s", factory=lambda home: None), "storage")


def test_hook_register_embedders() -> None:
    from memgpt.embeddings import EmbedderSpec

    registered_by("register_embedders", EmbedderSpec(name="e", factory=lambda model: None), "embedders")


def test_hook_register_functions() -> None:
    from memgpt.contract import FunctionSchema
    from memgpt.functions import FunctionSpec

    spec = FunctionSpec(name="f", schema=FunctionSchema(name="f"), handler=lambda agent: "ok")
    registered_by("register_functions", spec, "functions")


def test_hook_register_commands() -> None:
    from memgpt.cli.spec import CommandSpec

    registered_by("register_commands", CommandSpec(name="c", callback=lambda: None), "commands")


def test_hook_wrapper_for_model_first_answer_wins() -> None:
    registry = build_registry(
        [
            plugin("silent", wrapper_for_model=lambda model_name, chat_template: None),
            plugin(
                "knows",
                wrapper_for_model=lambda model_name, chat_template: "chatml" if "im_start" in (chat_template or "") else None,
            ),
        ]
    )
    assert registry.manager is not None
    hook = registry.manager.hook.wrapper_for_model
    assert hook(model_name=None, chat_template="{{ '<|im_start|>' }}") == "chatml"
    assert hook(model_name=None, chat_template="plain") is None


def test_suggest_wrapper_skips_a_raising_hook_and_an_unregistered_name() -> None:
    def broken(model_name: Any, chat_template: Any) -> str:
        raise RuntimeError("plugin bug")

    registry = build_registry(
        [
            plugin("good", register_wrappers=lambda register: register(wrapper_spec("mine")),
                   wrapper_for_model=lambda model_name, chat_template: "mine" if model_name == "m" else None),
            plugin("unknown", wrapper_for_model=lambda model_name, chat_template: "not-registered"),
            plugin("broken", wrapper_for_model=broken),
        ]
    )  # fmt: skip
    assert registry.suggest_wrapper("m", None) == "mine"
    assert registry.suggest_wrapper("other", None) is None
    assert build_registry([]).suggest_wrapper("m", None) is None


def test_duplicate_name_keeps_first_and_reports_second() -> None:
    registry = build_registry(
        [
            plugin("first", register_wrappers=lambda register: register(wrapper_spec("same"))),
            plugin(
                "second", register_wrappers=lambda register: (register(wrapper_spec("same")), register(wrapper_spec("other")))
            ),
        ]
    )
    assert registry.wrapper("same").plugin == "first"
    assert registry.wrapper("other").plugin == "second"
    [failure] = registry.failures
    assert failure.plugin == "second" and "'same' is already registered by plugin 'first'" in failure.error


def test_hook_that_raises_registers_nothing_and_spares_the_others() -> None:
    def broken(register: Any) -> None:
        register(wrapper_spec("half"))
        raise RuntimeError("boom")

    registry = build_registry(
        [
            plugin(
                "bad",
                register_wrappers=broken,
                register_storage=lambda register: register(StorageSpec("kept", lambda home: None)),
            ),
            plugin("good", register_wrappers=lambda register: register(wrapper_spec("fine"))),
        ]
    )
    assert set(registry.wrappers) == {"fine"}
    assert "kept" in registry.storage
    [failure] = registry.failures
    assert (failure.plugin, failure.stage) == ("bad", "register_wrappers") and "boom" in failure.error


def test_misspelled_hook_is_rejected_and_others_still_load() -> None:
    registry = build_registry(
        [
            plugin("typo", register_wrapper=lambda register: None),
            plugin("good", register_wrappers=lambda register: register(wrapper_spec("fine"))),
        ]
    )
    assert [p.name for p in registry.plugins] == ["good"]
    [failure] = registry.failures
    assert failure.plugin == "typo" and failure.stage == "validate" and "register_wrapper" in failure.error


def test_spec_without_name_is_a_hook_failure() -> None:
    registry = build_registry([plugin("nameless", register_wrappers=lambda register: register(object()))])
    assert registry.wrappers == {}
    assert "has no name" in registry.failures[0].error


def test_unknown_name_lists_the_choices() -> None:
    registry = build_registry(
        [plugin("a", register_wrappers=lambda register: (register(wrapper_spec("x")), register(wrapper_spec("y"))))]
    )
    with pytest.raises(UnknownNameError) as info:
        registry.wrapper("z")
    assert str(info.value) == "unknown wrapper 'z'; choose one of: x, y"


def test_trace_env_prints_hook_calls_and_registrations(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEMGPT_TRACE_PLUGINS", "1")
    build_registry([plugin("traced", register_wrappers=lambda register: register(wrapper_spec("t")))])
    assert "traced: wrappers 't'" in capsys.readouterr().err


def test_every_hookspec_is_documented_and_has_a_test() -> None:
    specs = [name for name, value in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(value, "memgpt_spec")]
    assert set(KINDS) <= set(specs)
    source = open(__file__, encoding="utf-8").read()
    for name in specs:
        assert (getattr(hookspecs, name).__doc__ or "").strip(), f"hook {name} has no docstring"
        assert f"def test_hook_{name}" in source, f"hook {name} has no test"
    docs = open(__file__.replace("core/tests/test_plugins.py", "docs/plugins.md"), encoding="utf-8").read()
    for name in specs:
        assert f"`{name}(" in docs, f"hook {name} is not in docs/plugins.md"


def test_builtin_name_wins_over_a_third_party_plugin_that_sorts_first() -> None:
    from memgpt.contract import BackendSpec

    def ours(register: Any) -> None:
        register(BackendSpec(name="llamacpp", factory=lambda s: "ours"))  # type: ignore[arg-type,return-value]

    def theirs(register: Any) -> None:
        register(BackendSpec(name="llamacpp", factory=lambda s: "theirs"))  # type: ignore[arg-type,return-value]

    registry = build_registry([plugin("aaa-takeover", register_backends=theirs), plugin("llamacpp", register_backends=ours)])
    assert registry.backend("llamacpp").plugin == "llamacpp"
    [failure] = registry.failures
    assert (
        failure.plugin == "aaa-takeover"
        and failure.error == "backends name 'llamacpp' belongs to the built-in plugin 'llamacpp', which wins"
    )


def test_a_factory_that_raises_is_a_plugin_error_naming_the_plugin() -> None:
    from memgpt.contract import BackendSpec
    from memgpt.errors import PluginError

    def boom(settings: Any) -> Any:
        raise RuntimeError("no GPU here")

    registry = build_registry(
        [plugin("flaky", register_backends=lambda register: register(BackendSpec(name="flaky-b", factory=boom)))]
    )
    with pytest.raises(PluginError, match=r"backend 'flaky-b' \(plugin 'flaky'\) failed to start: RuntimeError: no GPU here"):
        registry.backend("flaky-b").factory(None)


def test_discovery_loads_builtin_plugins_before_third_party_ones() -> None:
    from memgpt.plugins import _select

    assert _select(["aaa-third-party", "webui", "zzz-other", "core"]) == ["core", "webui", "aaa-third-party", "zzz-other"]


def test_a_hookimpl_named_otherwise_registers_through_specname() -> None:
    """pluggy knows the implementation by its spec; a plugin may name the function as it likes."""
    module = types.ModuleType("fake_renamed")

    @hookimpl(specname="register_wrappers")
    def add_my_wrappers(register: Any) -> None:
        register(wrapper_spec("renamed-wrapper"))

    module.add_my_wrappers = add_my_wrappers  # type: ignore[attr-defined]
    registry = build_registry([("renamed", module)])
    assert registry.wrapper("renamed-wrapper").plugin == "renamed"
    [info] = [p for p in registry.plugins if p.name == "renamed"]
    assert info.hooks == ["register_wrappers"] and info.registered == {"wrappers": ["renamed-wrapper"]}
