"""Pytest fixtures for the fake providers; wire them with
`pytest_plugins = ["tests.fakes.fixtures"]` in a conftest.py.

    fake_providers_server   session-wide process (started once)
    fake_providers          the same process, reset (config, state, log) before each test
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.server import FakeProvidersServer, run_fake_providers


@pytest.fixture(scope="session")
def fake_providers_server() -> Iterator[FakeProvidersServer]:
    with run_fake_providers() as server:
        yield server


@pytest.fixture
def fake_providers(fake_providers_server: FakeProvidersServer) -> FakeProvidersServer:
    fake_providers_server.control.reset()
    return fake_providers_server
