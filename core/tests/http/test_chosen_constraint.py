"""A dialect's ``_payload`` is given the request's constraint in the one kind the backend chose, so it sends
what it is given and never reaches back into the request."""

from __future__ import annotations

from typing import Any

import pytest
from pytest_httpx import HTTPXMock

from memgpt.contract import BackendSettings, BackendStatus, Capabilities, Completion, CompletionRequest, Constraint
from memgpt.contract.types import ConstraintKind, Usage
from memgpt.http import HTTPBackend

GBNF = 'root ::= "{}"'
SCHEMA: dict[str, Any] = {"type": "object"}
BOTH = Constraint(gbnf=GBNF, json_schema=SCHEMA)


class Recording(HTTPBackend):
    """Enforces ``kinds`` and records what ``_payload`` is given."""

    name = "recording"
    default_endpoint = "http://recording.test"
    complete_path = "/complete"

    def __init__(self, *kinds: ConstraintKind) -> None:
        super().__init__(BackendSettings(retries=0))
        self.capabilities = Capabilities(constraints=kinds)
        self.given: list[Constraint | None] = []

    def _payload(self, request: CompletionRequest, constraint: Constraint | None) -> dict[str, Any]:
        self.given.append(constraint)
        return {"prompt": request.prompt}

    def _parse(self, body: Any, request: CompletionRequest) -> Completion:
        return Completion(text=body["text"], usage=Usage(completion_tokens=1))

    def _count(self, text: str) -> int:
        return len(text)

    def _probe(self) -> BackendStatus:
        return BackendStatus(ok=True, endpoint=self.endpoint)


@pytest.mark.parametrize(
    ("kinds", "offered", "given"),
    [
        (("json_schema", "gbnf"), BOTH, Constraint(json_schema=SCHEMA)),
        (("gbnf", "json_schema"), BOTH, Constraint(gbnf=GBNF)),
        (("gbnf", "json_schema"), Constraint(json_schema=SCHEMA), Constraint(json_schema=SCHEMA)),
        (("gbnf",), Constraint(json_schema=SCHEMA), None),
        (("gbnf",), None, None),
    ],
)
def test_payload_gets_the_constraint_in_the_kind_chosen(
    httpx_mock: HTTPXMock, kinds: tuple[ConstraintKind, ...], offered: Constraint | None, given: Constraint | None
) -> None:
    httpx_mock.add_response(url="http://recording.test/complete", json={"text": "{}"})
    backend = Recording(*kinds)
    try:
        completion = backend.complete(CompletionRequest(prompt="p", constraint=offered))
    finally:
        backend.close()
    assert backend.given == [given]
    assert completion.constrained_by == (next(iter(given.kinds())) if given is not None else None)


def test_only_keeps_one_kind_and_refuses_one_the_constraint_lacks() -> None:
    assert BOTH.only("gbnf") == Constraint(gbnf=GBNF)
    assert BOTH.only("json_schema") == Constraint(json_schema=SCHEMA)
    with pytest.raises(ValueError, match="no json_schema"):
        Constraint(gbnf=GBNF).only("json_schema")
