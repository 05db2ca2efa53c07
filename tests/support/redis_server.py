"""A real Redis for the tests: Debian's `redis-server` on a free loopback port, in a temporary
folder, nothing saved (`--save ''`, no append-only file), stopped and removed after.

    def test_something(redis_server):
        client = redis.Redis.from_url(redis_server.url)
        redis_server.restart()      # same port, empty again (as a real restart without persistence)

The server dies with the test process even if that is killed (Linux's parent-death signal via
util-linux's `setpriv`), so no test leaves a redis-server behind.
"""
from __future__ import annotations

import pytest

from bench.shared import RedisServer  # the tests' Redis, in bench/shared.py (the Redis benchmark's too)


@pytest.fixture
def redis_server():
    """A fresh redis-server for this test (`.url`, `.restart()`, `.stop()`)."""
    try:
        server = RedisServer()
    except FileNotFoundError as err:
        pytest.skip(str(err))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    return redis_server.url
