"""Bookkeeping of an AttendStream shared by the blocking and asyncio streams: the requests
waiting for an answer, keyed by request_id, and what to do with each answer (resolve it, retry it
on the same stream after a backoff, or fail it). No I/O here."""

from __future__ import annotations

import dataclasses
import random
import threading
from collections.abc import Callable
from typing import Any

from attnd import _request
from attnd._retry import Deadline, RetryEvent, RetryPolicy
from attnd.errors import AttendError, status_code
from attnd.v1 import attention_pb2 as pb


@dataclasses.dataclass
class Pending:
    request: pb.AttendRequest
    template: Any      # q as the caller passed it: decides NumPy or torch for the answer
    details: bool
    deadline: Deadline
    handle: Any        # the caller's future (concurrent.futures or asyncio)
    attempts: int = 1


@dataclasses.dataclass(frozen=True)
class Outcome:
    kind: str          # "done" (value), "retry" (delay seconds), "fail" (error), "unknown"
    pending: Pending | None = None
    value: Any = None
    delay: float = 0.0
    error: AttendError | None = None


class StreamBook:
    def __init__(self, retry: RetryPolicy, rng: random.Random,
                 on_retry: Callable[[RetryEvent], None] | None):
        self._retry = retry
        self._rng = rng
        self._on_retry = on_retry
        self._lock = threading.Lock()
        self._pending: dict[str, Pending] = {}  # guarded by _lock

    def add(self, pending: Pending) -> None:
        with self._lock:
            rid = pending.request.request_id
            if rid in self._pending:
                raise ValueError(f"request_id {rid!r} is already waiting for an answer on this "
                                 "stream")
            self._pending[rid] = pending

    def waiting(self) -> list[Pending]:
        with self._lock:
            return list(self._pending.values())

    def answer(self, response: pb.AttendResponse) -> Outcome:
        with self._lock:
            pending = self._pending.get(response.request_id)
            if pending is None:
                return Outcome("unknown")
            if not response.HasField("status") or response.status.code == 0:
                del self._pending[response.request_id]
                result = _request.decode_response(response, pending.template)
                return Outcome("done", pending, value=_request.shape_answer(
                    result, pending.request.return_lse, pending.details))
            code = status_code(response.status.code)
            delay = self._retry.delay(pending.attempts, code, pending.deadline.remaining(),
                                      self._rng)
            if delay is None:
                del self._pending[response.request_id]
                return Outcome("fail", pending, error=AttendError(
                    code, response.status.message, attempts=pending.attempts,
                    request_id=response.request_id))
            pending.attempts += 1
        if self._on_retry is not None:
            self._on_retry(RetryEvent(pending.attempts - 1, code, response.status.message, delay,
                                      response.request_id))
        return Outcome("retry", pending, delay=delay)

    def fail_all(self, error: AttendError) -> list[tuple[Pending, AttendError]]:
        """Every request still waiting, removed, each with `error` carrying its own id."""
        with self._lock:
            pending, self._pending = list(self._pending.values()), {}
        return [(p, AttendError(error.code(), error.details(), attempts=p.attempts,
                                request_id=p.request.request_id)) for p in pending]
