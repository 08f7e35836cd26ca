"""A backend class takes its name, capabilities and default endpoint from the spec it names, so each is
declared once: in the spec the plugin registers."""

from __future__ import annotations

from typing import Any

import pytest

from memgpt.contract import Backend, BackendSettings, BackendSpec, BackendStatus, Capabilities, Completion, CompletionRequest
from memgpt.http import HTTPBackend

SPEC = BackendSpec(
    name="declared-once",
    factory=lambda settings: Taking(),
    default_endpoint="http://localhost:6543",
    capabilities=Capabilities(constraints=("json_schema",), tokenizer=True),
)


class Minimal(Backend):
    def complete(self, request: CompletionRequest) -> Completion:
        return Completion(text="{}")

    def count_tokens(self, text: str) -> int:
        return len(text)

    def check(self) -> BackendStatus:
        return BackendStatus(ok=True)


class Taking(Minimal):
    spec = SPEC


class Served(HTTPBackend):
    spec = SPEC


def test_a_class_with_a_spec_takes_its_name_and_capabilities() -> None:
    assert (Taking.name, Taking.capabilities) == ("declared-once", SPEC.capabilities)
    backend = Taking()
    assert (backend.name, backend.capabilities, type(backend).spec) == ("declared-once", SPEC.capabilities, SPEC)


def test_an_http_backend_takes_the_default_endpoint_too() -> None:
    assert Served.default_endpoint == "http://localhost:6543"
    backend = Served(BackendSettings())
    try:
        assert backend.endpoint == "http://localhost:6543"
        assert backend.http.backend == "declared-once"
    finally:
        backend.close()


def test_a_spec_without_a_default_endpoint_leaves_the_kits_default() -> None:
    class NoEndpoint(HTTPBackend):
        spec = BackendSpec(name="no-endpoint", factory=lambda settings: None, needs_endpoint=False)  # type: ignore[arg-type,return-value]

    assert NoEndpoint.default_endpoint == HTTPBackend.default_endpoint
    assert NoEndpoint.name == "no-endpoint"


def test_a_subclass_inherits_what_its_base_took() -> None:
    class Tweaked(Taking):
        pass

    assert (Tweaked.name, Tweaked.capabilities, Tweaked.spec) == (Taking.name, Taking.capabilities, SPEC)


@pytest.mark.parametrize(
    ("attribute", "value"),
    [("name", "declared-twice"), ("capabilities", Capabilities()), ("default_endpoint", "http://localhost:1")],
)
def test_declaring_a_fact_in_the_class_as_well_is_refused(attribute: str, value: Any) -> None:
    with pytest.raises(TypeError, match=f"declares {attribute} and takes its spec's"):
        type("Twice", (HTTPBackend,), {"spec": SPEC, attribute: value})


def test_a_property_may_report_what_the_backend_finds_out_at_run_time() -> None:
    class Probing(Minimal):
        spec = SPEC

        @property
        def capabilities(self) -> Capabilities:  # type: ignore[override]
            return SPEC.capabilities.model_copy(update={"tokenizer": False})

    assert Probing.name == "declared-once"
    assert Probing().capabilities == Capabilities(constraints=("json_schema",), tokenizer=False)


def test_a_class_without_a_spec_keeps_its_own_declarations() -> None:
    class Own(Minimal):
        name = "own"
        capabilities = Capabilities(tokenizer=True)

    assert (Own.spec, Own.name, Own.capabilities) == (None, "own", Capabilities(tokenizer=True))
