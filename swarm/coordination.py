"""The Redis connection every door shares, and the one place Redis errors become `CoordinationError`.

A door (leases.py, book.py, marks.py, baselines.py, quota.py) is a class named for what it owns that wraps the
client; it is the only holder of its keys (names in keys.py) and its public methods are `@guarded`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

import redis

from swarm.errors import CoordinationError

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def open_client(url: str, timeout: float) -> redis.Redis:
    """A client answering in text; a call to an unreachable Redis fails after `timeout` seconds."""
    return redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30, decode_responses=True
    )


def with_options(client: redis.Redis, **overrides: Any) -> redis.Redis:
    """A client on the same server with other connection options (text answers, a shorter timeout)."""
    pool = client.connection_pool
    kwargs = {**pool.connection_kwargs, **overrides}
    return redis.Redis(connection_pool=type(pool)(connection_class=pool.connection_class, **kwargs))


def text_client(client: redis.Redis) -> redis.Redis:
    """The client itself if it answers in text, else one that does (doors never see bytes)."""
    if client.connection_pool.connection_kwargs.get("decode_responses"):
        return client
    return with_options(client, decode_responses=True)


def guarded(method: F) -> F:
    """Turn a Redis error inside a door's method into a CoordinationError naming the step."""

    @functools.wraps(method)
    def call(self: Door, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except redis.RedisError as exc:
            where = self.r.connection_pool.connection_kwargs.get("host", "?")
            raise CoordinationError(
                f"Redis at {where}: {type(self).__name__}.{method.__name__} failed: {type(exc).__name__}: {exc} "
                "(check that Redis runs and `redis_url`/SWARM_REDIS_URL points at it)"
            ) from exc

    return cast(F, call)


class Door:
    """Base of the Redis doors: holds a text client."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = text_client(client)
