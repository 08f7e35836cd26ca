"""The SDK's public surface: ``memgpt.plugin.__all__`` is pinned here, so adding or removing a name is a
deliberate change seen in review, and every name listed really is there."""

from __future__ import annotations

import memgpt.plugin
import memgpt.testing

SDK = {
    # hooks
    "hookimpl",
    # backends
    "Backend", "BackendSettings", "BackendSpec", "BackendStatus", "Capabilities",
    "Completion", "CompletionRequest", "Constraint", "ConstraintKind", "FinishReason", "SamplingParams", "Usage",
    # the HTTP server-backend kit
    "HTTPBackend", "HTTPClient", "normalize_endpoint", "first_model", "openai_completion", "openai_request",
    # wrappers
    "Wrapper", "WrapperOptions", "WrapperSpec", "Prompt", "wrapper_factory",
    "CallShape", "FunctionCall", "FunctionSchema", "Message",
    "describe_type", "function_docs", "system_text",
    "ParsedCall", "parse_call", "validate_call",
    # functions, grammars, commands, storage, embeddings
    "FunctionContext", "FunctionSpec", "GrammarSpec", "CommandSpec", "AgentRecord", "Passage", "Storage", "StorageOptions", "StorageSpec", "EmbedderSpec",
    # errors
    "MemGPTError", "ConfigError", "UnknownNameError", "PluginError",
    "BackendError", "BackendUnreachable", "BackendTimeout", "BackendHTTPError", "BackendProtocolError",
    "EmptyCompletion", "ModelLoadError", "GrammarError", "ContextOverflowError",
    "ParseError", "UnknownFunctionError", "ArgumentError", "StorageError", "EmbeddingError", "FunctionError",
}  # fmt: skip


def test_the_sdk_exports_exactly_the_pinned_names() -> None:
    assert set(memgpt.plugin.__all__) == SDK
    assert len(memgpt.plugin.__all__) == len(SDK), "a name is listed twice"


def test_every_exported_name_exists() -> None:
    missing = [name for name in memgpt.plugin.__all__ if not hasattr(memgpt.plugin, name)]
    assert missing == []


def test_every_lazily_imported_name_is_in_all_and_nothing_else_is_public() -> None:
    assert set(memgpt.plugin._WHERE) == set(memgpt.plugin.__all__)
    # ("@py_builtins" and the like: pytest rewrites the asserts of the memgpt distribution, whose pytest11
    # entry point makes it a pytest plugin)
    public = {name for name in vars(memgpt.plugin) if not name.startswith(("_", "@"))}
    assert public - set(memgpt.plugin.__all__) <= {"annotations", "TYPE_CHECKING", "Any"}


def test_registering_a_spec_imports_neither_the_http_kit_nor_the_parser() -> None:
    """A plugin's registration module runs at every CLI start: naming a spec must stay cheap."""
    import subprocess
    import sys

    code = (
        "import sys; from memgpt.plugin import BackendSpec, hookimpl; "
        "print(','.join(m for m in ('httpx', 'memgpt.parsing._call', 'memgpt.http._backend') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_contracts_are_reachable_from_memgpt_testing() -> None:
    for name in memgpt.testing.__all__:
        assert isinstance(getattr(memgpt.testing, name), type)
    assert set(memgpt.testing.__all__) >= {"BackendContract", "HTTPFaultContract", "WrapperContract"}


def test_the_pytest_plugin_registers_the_contract_markers_outside_the_workspace(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A plugin's own repository (no memgpt pytest settings) gets the markers the contracts use."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "pytest", "--markers"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for marker in ("model", "server", "slow"):
        assert f"@pytest.mark.{marker}:" in result.stdout
