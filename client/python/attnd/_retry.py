"""Retry policy: exponential backoff with jitter, bounded by attempts and by the call's deadline.

Attend is a pure function of its request, so a request retried after UNAVAILABLE (server gone,
draining, or unreachable) or RESOURCE_EXHAUSTED (queue full, no memory for it now) is safe even
if a server had already computed it.

CANCELLED is retried too. This client never cancels a call of its own (a cancelled asyncio task
raises asyncio.CancelledError, which is never retried), so a CANCELLED answer comes from the
server side: gRPC C++ servers, attnd among them, answer CANCELLED to a call that had arrived but
not reached its handler when the server shut down (grpc/grpc#41785), as when attnd drains on
SIGTERM while a large request is still arriving. Such a call was never computed.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable

import grpc


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Attempt n (n = 1, 2, ...) failing with a code in `codes` waits
    min(max_backoff, initial_backoff * multiplier**(n-1)) * uniform(1 - jitter, 1) seconds and
    tries again, unless it was attempt `max_attempts` or the wait would reach past the deadline.
    jitter=1 is "full jitter": callers that failed together spread out instead of retrying in step.
    """
    max_attempts: int = 5
    initial_backoff: float = 0.05
    max_backoff: float = 2.0
    multiplier: float = 2.0
    jitter: float = 1.0
    codes: frozenset[grpc.StatusCode] = frozenset(
        {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED,
         grpc.StatusCode.CANCELLED})

    def __post_init__(self):
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts = {self.max_attempts}; must be >= 1")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter = {self.jitter}; must be in [0, 1]")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.multiplier < 1:
            raise ValueError("backoffs must be >= 0 and multiplier >= 1")

    def delay(self, attempt: int, code: grpc.StatusCode, remaining: float | None,
              rng: random.Random) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None: give up (`remaining` is the
        time left before the deadline, None without one)."""
        if code not in self.codes or attempt >= self.max_attempts:
            return None
        cap = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        wait = cap * (1.0 - self.jitter * rng.random())
        if remaining is not None and wait >= remaining:
            return None
        return wait


DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(max_attempts=1)


@dataclasses.dataclass(frozen=True)
class RetryEvent:
    """Passed to a client's on_retry callback before each wait."""
    attempt: int           # the attempt that failed (1-based)
    code: grpc.StatusCode
    details: str
    delay: float           # seconds until the next attempt
    request_id: str


class Deadline:
    """An absolute deadline from a timeout in seconds (None: none)."""

    def __init__(self, timeout: float | None, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._at = None if timeout is None else clock() + timeout

    def remaining(self) -> float | None:
        return None if self._at is None else max(0.0, self._at - self._clock())
