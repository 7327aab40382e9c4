"""module_utils/railway: GraphQL errors, 429 + Retry-After, pagination, token hygiene (against the FAKE Railway)."""

from __future__ import annotations

import pytest
from railway_fake import TOKEN, api, fake, sleeps  # noqa: F401  (fixtures)

from ansible_collections.aistack.hosting.plugins.module_utils.railway import (
    PROJECTS_QUERY,
    RailwayClient,
    RailwayError,
    retry_delay,
)


def client(fake, token: str = TOKEN, page_size: int = 50) -> RailwayClient:
    return RailwayClient(token, fake.url, timeout=5, page_size=page_size)


def test_pagination_walks_every_page(fake, sleeps):
    for i in range(7):
        fake.add_project(f"p{i}")
    fake.max_page_size = 3
    names = [node["name"] for node in client(fake).paginate(PROJECTS_QUERY, {"workspaceId": None}, ["projects"])]
    assert names == [f"p{i}" for i in range(7)]
    pages = [r for r in fake.requests if r["field"] == "projects"]
    assert len(pages) == 3 and [p["variables"]["after"] for p in pages] == [None, "2", "5"]


def test_429_is_retried_after_retry_after(fake, sleeps):
    fake.add_project("one")
    fake.rate_limit, fake.retry_after = 2, "3"
    nodes = list(client(fake).paginate(PROJECTS_QUERY, {"workspaceId": None}, ["projects"]))
    assert [n["name"] for n in nodes] == ["one"]
    assert sleeps == [3.0, 3.0]
    assert [r["kind"] for r in fake.requests] == ["rate-limited", "rate-limited", "query"]


def test_429_retries_are_bounded(fake, sleeps):
    fake.rate_limit = 100
    with pytest.raises(RailwayError, match="HTTP 429"):
        client(fake).call(PROJECTS_QUERY, {})
    assert len(sleeps) == 5


def test_graphql_errors_surface_with_their_message(fake, sleeps):
    fake.fail_fields["projects"] = "Problem processing request: workspace is locked"
    with pytest.raises(RailwayError, match="workspace is locked"):
        client(fake).call(PROJECTS_QUERY, {})


def test_bad_token_is_reported_without_the_token(fake, sleeps):
    with pytest.raises(RailwayError) as caught:
        client(fake, token="wrong-secret-token").call(PROJECTS_QUERY, {})
    assert "Not Authorized" in str(caught.value) and "wrong-secret-token" not in str(caught.value)


def test_unreachable_api_is_a_clear_error(sleeps):
    with pytest.raises(RailwayError, match="cannot reach the Railway API"):
        RailwayClient(TOKEN, "http://127.0.0.1:9/graphql/v2", timeout=2).call(PROJECTS_QUERY, {})


@pytest.mark.parametrize("header,attempt,expected", [("7", 0, 7.0), ("600", 0, 60.0), (None, 2, 4), ("soon", 1, 2)])
def test_retry_delay(header, attempt, expected):
    assert retry_delay(header, attempt) == expected


def test_fake_validates_input_types_like_graphql(fake, sleeps):
    """The fake rejects fields Railway's input types do not have, so a typo in a module cannot pass the tests."""
    from ansible_collections.aistack.hosting.plugins.module_utils.railway import VARIABLE_COLLECTION_UPSERT

    bad = {"input": {"projectId": "p", "environmentId": "e", "variables": {}, "skipDeploy": True}}
    with pytest.raises(RailwayError, match='Field "skipDeploy" is not defined by type "VariableCollectionUpsertInput"'):
        client(fake).call(VARIABLE_COLLECTION_UPSERT, bad)
    assert fake.mutations == []


def test_mutations_are_not_resent_on_503(monkeypatch, sleeps):
    """A 503 may arrive after the mutation was applied: resending could create a second project."""
    from urllib.error import HTTPError

    calls = []

    def unavailable(self, method, url, **kwargs):
        calls.append(kwargs["data"])
        raise HTTPError(url, 503, "Service Unavailable", {}, None)

    from ansible.module_utils.urls import Request

    monkeypatch.setattr(Request, "open", unavailable)
    railway = RailwayClient(TOKEN, "https://railway.invalid/graphql/v2")
    with pytest.raises(RailwayError, match="HTTP 503"):
        railway.call("mutation ProjectCreate($input: ProjectCreateInput!) { projectCreate(input: $input) { id } }", {})
    assert len(calls) == 1 and sleeps == []
    with pytest.raises(RailwayError, match="HTTP 503"):
        railway.call(PROJECTS_QUERY, {})
    assert len(calls) == 7 and len(sleeps) == 5


def test_fake_log_endpoint(fake, sleeps):
    """GET /_fake/log (a test hook of the fake, not Railway) reports the mutations applied."""
    import json
    import urllib.request

    fake.fail_fields["projectCreate"] = "nope"
    client(fake).call(PROJECTS_QUERY, {})
    base = fake.url.rsplit("/graphql", 1)[0]
    log = json.load(urllib.request.urlopen(f"{base}/_fake/log"))
    assert log == {"mutations": [], "requests": [{"kind": "query", "field": "projects"}]}
