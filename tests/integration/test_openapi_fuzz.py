"""Schemathesis against a running node, from the OpenAPI document the node serves: for every
operation, requests generated from its schemas (with a server token), those the schemas allow
and those they do not, and every answer checked: no 5xx, a status code the document lists, the
content type it lists, a body its schema takes (Stream's error body for a 4xx). Then the links
of the document (an added user, entry, reaction read, changed and deleted by the id the add
answered) walked as a state machine.

Bounded for CI: `TIDINGS_FUZZ_EXAMPLES` examples per operation and mode (default 6) and as many
stateful steps; set it higher locally to look harder (`TIDINGS_FUZZ_EXAMPLES=200 pytest ...`),
`TIDINGS_FUZZ_MODES=positive` for valid requests only, `TIDINGS_FUZZ_ONLY=<operationId>` for
one operation."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from harness.common import SERVER_TOKEN
from tests.support import API_KEY, ServerProcess

EXAMPLES = int(os.environ.get("TIDINGS_FUZZ_EXAMPLES", "6"))
# positive: what the schemas allow; negative: what they do not (bad bodies and parameters),
# which must answer a 4xx in Stream's shape as well, never a 5xx
MODES = [
    GenerationMode(m) for m in os.environ.get("TIDINGS_FUZZ_MODES", "positive,negative").split(",")
]
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
# og/ fetches the page it is given: a fuzzer would send it to random hosts.
NOT_FUZZED = ("openGraph",)
# what the stateful walk calls: the adds whose answers link to the calls on what they added
LINKED = (
    "addActivities", "addReaction", "getReaction", "updateReaction", "deleteReaction",
    "addUser", "getUser", "updateUser", "deleteUser",
    "addEntry", "getEntry", "updateEntry", "deleteEntry",
)  # fmt: skip


def config(base_url: str) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict({
        "base-url": base_url,
        "seed": 21,  # the same requests every run: a failure in CI is one to reproduce
        "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
        "generation": {"mode": "positive", "max-examples": EXAMPLES, "no-shrink": True},
        "phases": {"coverage": {"enabled": False}, "stateful": {"max-steps": max(EXAMPLES, 6)}},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        "auth": {"openapi": {"api_key": {"api_key": API_KEY}, "jwt": {"api_key": SERVER_TOKEN}}},
        "request-timeout": 10,
    })  # fmt: skip


@pytest.fixture(scope="module")
def document(server: ServerProcess) -> dict[str, Any]:
    """The document as the node serves it (no api_key, no token)."""
    answer = requests.get(f"{server.base_url}/api/v1.0/openapi.json", timeout=10)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def load(server: ServerProcess, document: dict[str, Any]) -> Any:
    api = schemathesis.openapi.from_dict(document, config=config(f"{server.base_url}/api/v1.0"))
    return api.exclude(operation_id=NOT_FUZZED)


def told(exc: BaseException) -> str:
    """A failure with what it holds (Hypothesis wraps a flaky one around the first)."""
    if isinstance(exc, BaseExceptionGroup):
        return "\n".join([str(exc), *(told(inner) for inner in exc.exceptions)])
    return f"{type(exc).__name__}: {exc}"


SETTINGS = hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    suppress_health_check=list(hypothesis.HealthCheck),
)


def test_every_operation_answers_as_documented(
    server: ServerProcess, document: dict[str, Any]
) -> None:
    """Each operation fuzzed on its own; every failure of every operation told at the end."""
    failures: list[str] = []
    api = load(server, document)
    if only := os.environ.get("TIDINGS_FUZZ_ONLY"):  # one operation, by its operationId
        api = api.include(operation_id=only)
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) > (0 if only else 40)
    session = requests.Session()
    for operation in operations:
        for mode in MODES:

            @hypothesis.given(case=operation.as_strategy(mode))
            @SETTINGS
            def fuzz(case: Any) -> None:
                case.call_and_validate(session=session)

            try:
                fuzz()
            except hypothesis.errors.Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE, operation.label  # nothing to spoil
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis' failures, grouped
                failures.append(f"{operation.label} ({mode.value}): {told(exc)}")
    assert not failures, "\n\n".join(failures)


def test_the_documented_links_walked_as_a_state_machine(
    server: ServerProcess, document: dict[str, Any]
) -> None:
    """Failures are collected rather than raised: a walk against a live server cannot be
    replayed the same (ids change), which is what Hypothesis would do to report one, and it
    may stop a walk early when it notices (as schemathesis' own runner, which starts anew)."""
    calls: list[tuple[str, int]] = []
    failures: list[str] = []
    linked = load(server, document).include(operation_id=list(LINKED))

    class Walk(linked.as_state_machine()):  # type: ignore[misc]
        def after_call(self, response: Any, case: Any) -> None:
            calls.append((case.operation.label, response.status_code))

        def validate_response(self, response: Any, case: Any, *args: Any, **kwargs: Any) -> None:
            try:
                super().validate_response(response, case, *args, **kwargs)
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{case.operation.label}: {told(exc)}")

    # Flaky: Hypothesis noticed that the server is not the same twice; what ran is checked
    with contextlib.suppress(hypothesis.errors.Flaky):
        Walk.run(settings=hypothesis.settings(SETTINGS, stateful_step_count=max(EXAMPLES, 6)))
    assert not failures, "\n\n".join(failures)
    # the links were followed: something added was then read by the id its add answered
    assert {label for label, status in calls if status == 200} & {
        "GET /user/{user_id}/", "GET /collections/{collection}/{entry_id}/",
        "GET /reaction/{reaction_id}/",
    }, calls  # fmt: skip


def test_the_page_is_served(server: ServerProcess, document: dict[str, Any]) -> None:
    answer = requests.get(f"{server.base_url}/api/v1.0/docs/", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "/api/v1.0/reaction/{reaction_id}/" in answer.text


def test_what_the_fuzzing_found_answers_a_4xx_not_a_500(server: ServerProcess, uid: str) -> None:
    """Each of these answered 500 before: a body that is no UTF-8, a multipart part with a bad
    header, data the store cannot hold; and a read bounded by an id past the year 9999 (200)."""
    base, auth = f"{server.base_url}/api/v1.0", {"Authorization": SERVER_TOKEN}

    def call(method: str, path: str, **kwargs: Any) -> requests.Response:
        params = {"api_key": API_KEY, **kwargs.pop("params", {})}
        headers = {**auth, **kwargs.pop("headers", {})}
        return requests.request(
            method, base + path, params=params, headers=headers, timeout=10, **kwargs
        )

    bad_text = call(
        "POST", "/user/", data=b"\xff\xfe{", headers={"Content-Type": "application/json"}
    )
    assert bad_text.status_code == 400 and bad_text.json()["exception"] == "InputException"
    boundary = "b0undary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="\x10"\r\n\r\nx\r\n'
            f"--{boundary}--\r\n").encode()  # fmt: skip
    multipart = call("POST", "/files/", data=body, headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}",
    })  # fmt: skip
    assert multipart.status_code == 400, multipart.text
    for data in ({"n": 2**64}, {"a\u0000": 1}):
        stored = call("POST", "/user/", json={"id": f"u{uid}", "data": data})
        assert stored.status_code == 400, stored.text
    late = call(
        "GET", f"/feed/user/{uid}/", params={"id_lte": "f20e4698-abed-751f-a9d5-27ff5ad4e2a1"}
    )
    assert late.status_code == 200 and late.json()["results"] == []
