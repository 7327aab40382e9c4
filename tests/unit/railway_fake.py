"""Fixtures shared by the railway_* tests: the FAKE Railway GraphQL server (tests/fakes) and no-wait sleeps."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes"))

from railway_graphql import FakeRailway, serve  # noqa: E402

from ansible_collections.aistack.hosting.plugins.module_utils import railway  # noqa: E402

TOKEN = "rw-test-token-0123456789"


@pytest.fixture()
def fake() -> Iterator[FakeRailway]:
    """A fresh fake on 127.0.0.1:<free port>; ``fake.url`` is its endpoint."""
    state = FakeRailway(TOKEN)
    server = serve(state)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/graphql/v2"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture()
def sleeps(monkeypatch) -> list[float]:
    """Record the client's sleeps instead of waiting."""
    recorded: list[float] = []
    monkeypatch.setattr(railway, "sleep", recorded.append)
    return recorded


@pytest.fixture()
def api(fake, sleeps) -> dict:
    """Connection options pointing a module at the fake."""
    return {"railway_token": TOKEN, "railway_api_url": fake.url}
