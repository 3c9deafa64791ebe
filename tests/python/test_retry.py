"""Retries: the policy's arithmetic; a fake server failing N times (blocking and asyncio);
attempts and the deadline bounding them; and a real attnd whose queue is full."""

from __future__ import annotations

import asyncio
import random
import time

import grpc
import numpy as np
import pytest

import attnd
import attnd.aio
import np_reference as ref
from fake_server import FakeAttention, serve
from live_server import ONE_SLOT, full_queue

FAST = attnd.RetryPolicy(max_attempts=5, initial_backoff=0.01, max_backoff=0.05)
Q = np.arange(2 * 3 * 2 * 4, dtype=np.float32).reshape(2, 3, 2, 4)  # [B, Mq, Hq, D]


def test_policy_backoff_is_exponential_capped_and_jittered():
    code = grpc.StatusCode.UNAVAILABLE
    rng = random.Random(1)
    steady = attnd.RetryPolicy(max_attempts=10, initial_backoff=0.1, max_backoff=0.5,
                               multiplier=2, jitter=0)
    assert [steady.delay(n, code, None, rng) for n in range(1, 6)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    assert steady.delay(10, code, None, rng) is None                  # attempts spent
    assert steady.delay(1, grpc.StatusCode.INVALID_ARGUMENT, None, rng) is None
    assert steady.delay(3, code, 0.3, rng) is None                    # 0.4 s > 0.3 s left
    assert steady.delay(3, code, 0.5, rng) == 0.4
    full = attnd.RetryPolicy(initial_backoff=0.1, max_backoff=0.4, jitter=1)
    waits = [full.delay(3, grpc.StatusCode.RESOURCE_EXHAUSTED, None, rng) for _ in range(200)]
    assert all(0 < w <= 0.4 for w in waits) and max(waits) - min(waits) > 0.2
    with pytest.raises(ValueError):
        attnd.RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        attnd.RetryPolicy(jitter=1.5)


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE,
                                  grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED])
def test_retries_until_the_server_answers(code):
    fake = FakeAttention(failures=3, code=code)
    events = []
    with serve(fake) as port, attnd.Client(f"127.0.0.1:{port}", retry=FAST,
                                           on_retry=events.append) as client:
        out = client.attend(Q, Q, Q, request_id="r1")
    np.testing.assert_array_equal(out, Q)
    assert fake.calls == 4
    assert [(e.attempt, e.code, e.request_id) for e in events] == [
        (1, code, "r1"), (2, code, "r1"), (3, code, "r1")]
    assert all(0 <= e.delay <= FAST.max_backoff for e in events)


def test_aio_retries_until_the_server_answers():
    fake = FakeAttention(failures=2, code=grpc.StatusCode.RESOURCE_EXHAUSTED)

    async def main(port):
        async with attnd.aio.Client(f"127.0.0.1:{port}", retry=FAST) as client:
            return await client.attend(Q, Q, Q), await client.info()
    with serve(fake) as port:
        out, info = asyncio.run(main(port))
    np.testing.assert_array_equal(out, Q)
    assert info.version == "fake" and fake.calls == 4


def test_gives_up_after_max_attempts_and_on_other_codes():
    fake = FakeAttention(failures=100)
    with serve(fake) as port, attnd.Client(f"127.0.0.1:{port}", retry=FAST) as client:
        with pytest.raises(attnd.AttendError) as e:
            client.attend(Q, Q, Q)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE and e.value.attempts == 5
        assert fake.calls == 5
        with pytest.raises(attnd.AttendError):
            client.info(timeout=5)
    no_retry = FakeAttention(failures=1)
    with serve(no_retry) as port, attnd.Client(f"127.0.0.1:{port}",
                                               retry=attnd.NO_RETRY) as client:
        with pytest.raises(attnd.AttendError):
            client.attend(Q, Q, Q)
        assert no_retry.calls == 1
    invalid = FakeAttention(failures=1, code=grpc.StatusCode.INVALID_ARGUMENT)
    with serve(invalid) as port, attnd.Client(f"127.0.0.1:{port}", retry=FAST) as client:
        with pytest.raises(attnd.AttendError) as e:
            client.attend(Q, Q, Q)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and invalid.calls == 1


def test_the_deadline_bounds_all_attempts():
    fake = FakeAttention(failures=10**6)
    policy = attnd.RetryPolicy(max_attempts=10**6, initial_backoff=0.02, max_backoff=0.1)
    with serve(fake) as port, attnd.Client(f"127.0.0.1:{port}", retry=policy) as client:
        start = time.monotonic()
        with pytest.raises(attnd.AttendError) as e:
            client.attend(Q, Q, Q, timeout=0.6)
        elapsed = time.monotonic() - start
    assert e.value.attempts > 3 and elapsed < 0.6 + 0.9  # slack for a loaded 2-core machine
    assert e.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_no_server_listening_is_unavailable_after_retries():
    with serve(FakeAttention()) as port:
        pass  # the port is closed again
    with attnd.Client(f"127.0.0.1:{port}", retry=FAST) as client:
        with pytest.raises(attnd.AttendError) as e:
            client.attend(Q, Q, Q, timeout=10)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE and e.value.attempts == 5


def test_stream_requests_are_retried_in_the_stream():
    fake = FakeAttention(failures=3, code=grpc.StatusCode.RESOURCE_EXHAUSTED)
    events = []
    with serve(fake) as port, attnd.Client(f"127.0.0.1:{port}", retry=FAST,
                                           on_retry=events.append) as client:
        with client.stream() as stream:
            futures = [stream.submit(Q, Q, Q, request_id=f"r{i}") for i in range(2)]
        for f in futures:
            np.testing.assert_array_equal(f.result(), Q)

        async def aio():
            async with attnd.aio.Client(f"127.0.0.1:{port}", retry=FAST) as c:
                async with c.stream() as s:
                    return await s.attend(Q, Q, Q)
        fake.calls, fake.failures = 0, 2
        np.testing.assert_array_equal(asyncio.run(aio()), Q)
    assert len(events) == 3 and {e.request_id for e in events} <= {"r0", "r1"}


# The reader thread re-raises the callback's error after failing the stream: expected here.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_failing_on_retry_callback_fails_the_stream_instead_of_hanging():
    def explode(event):
        raise RuntimeError("callback bug")

    fake = FakeAttention(failures=1, code=grpc.StatusCode.UNAVAILABLE)
    with serve(fake) as port, attnd.Client(f"127.0.0.1:{port}", retry=FAST,
                                           on_retry=explode) as client:
        stream = client.stream()
        future = stream.submit(Q, Q, Q)
        with pytest.raises(attnd.AttendError, match="callback bug") as e:
            future.result(timeout=30)
        assert e.value.code() == grpc.StatusCode.INTERNAL
        stream.cancel()


def test_real_server_with_a_full_queue(start_server, rng):
    # Both the worker and the one queue slot busy: a request is refused RESOURCE_EXHAUSTED at
    # once without retries, and with them runs once the queue frees.
    server = start_server(ONE_SLOT)
    small = rng.standard_normal((1, 9, 2, 8), np.float32)
    events = []
    with full_queue(server):
        with attnd.Client(server.target, retry=attnd.NO_RETRY) as c:
            with pytest.raises(attnd.AttendError) as e:
                c.attend(small, small, small)
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and e.value.attempts == 1

        patient = attnd.RetryPolicy(max_attempts=1000, initial_backoff=0.05, max_backoff=0.5)
        with attnd.Client(server.target, retry=patient, on_retry=events.append) as c:
            out = c.attend(small, small, small, timeout=300)
    assert ref.max_error(out, ref.attention(small, small, small)[0]) <= ref.TOLERANCE["f32"]
    assert events and {e.code for e in events} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert server.metric("attnd_requests_total", method="Attend",
                         code="RESOURCE_EXHAUSTED") == 1 + len(events)
