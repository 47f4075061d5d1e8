"""Helpers for the state-store tests: real `seldon-router serve` processes, and a real
redis-server of the test's own (tests/redis_server.py)."""

from __future__ import annotations

import pytest

import servers
from redis_server import RedisServer, need_redis


@pytest.fixture
def redis_factory(tmp_path):
    """make(persist=False, start=True): a RedisServer on a free port of its own."""
    need_redis()
    made = []

    def make(persist: bool = False, start: bool = True) -> RedisServer:
        directory = tmp_path / f"redis-{len(made)}"
        directory.mkdir()
        server = RedisServer(servers.free_port(), directory, persist)
        made.append(server)
        return server.start() if start else server

    yield make
    for server in made:
        server.stop()


@pytest.fixture
def redis_server(redis_factory) -> RedisServer:
    return redis_factory()
