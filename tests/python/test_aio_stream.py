"""The asyncio client and the AttendStream call (blocking and asyncio) through a live attnd:
answers matched by request_id, an in-stream failure that leaves the stream going, and in-stream
retries when the server's queue is full."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest

import attnd
import attnd.aio
import np_reference as ref
from cases import CASES, DTYPES, make_inputs
from live_server import ONE_SLOT, full_queue


def problems(rng, count):
    """`count` (q, k, v, options) of varied shapes, dtypes and options, from CASES."""
    return [make_inputs(CASES[i % len(CASES)], list(DTYPES.values())[i % 3], rng)
            for i in range(count)]


def check(answer, q, k, v, options):
    out, lse = answer
    want_out, want_lse = ref.attention(q, k, v, **options)
    dtype = {v: k for k, v in DTYPES.items()}[q.dtype]
    assert out.dtype == q.dtype
    assert ref.max_error(out, want_out) <= ref.TOLERANCE[dtype]
    assert ref.max_error(lse, want_lse) <= 1e-3


def test_aio_attend_and_info(server, rng):
    async def main():
        async with attnd.aio.Client(server.target, timeout=60) as client:
            info = await client.info()
            assert info.backend == "cpu"
            batch = problems(rng, 6)
            answers = await asyncio.gather(*(client.attend(q, k, v, return_lse=True, **o)
                                             for q, k, v, o in batch))
            for answer, (q, k, v, o) in zip(answers, batch, strict=True):
                check(answer, q, k, v, o)
            result = await client.attend(*batch[0][:3], details=True, **batch[0][3])
            assert result.execution.variant == "cpu_chunked"
    asyncio.run(main())


def test_aio_error(server):
    async def main():
        async with attnd.aio.Client(server.target) as client:
            q = np.zeros((1, 4, 8, 16), np.float32)
            k = np.zeros((1, 4, 3, 16), np.float32)
            with pytest.raises(attnd.AttendError) as e:
                await client.attend(q, k, k)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    asyncio.run(main())


def test_stream_answers_by_request_id(client, rng):
    batch = problems(rng, 12)
    with client.stream() as stream:
        futures = [stream.submit(q, k, v, return_lse=True, request_id=f"s{i}", **o)
                   for i, (q, k, v, o) in enumerate(batch)]
        details = stream.submit(*batch[0][:3], details=True, request_id="d", **batch[0][3])
        bad = stream.submit(np.zeros((1, 4, 8, 16), np.float32),
                            np.zeros((1, 4, 3, 16), np.float32),
                            np.zeros((1, 4, 3, 16), np.float32))
        last = stream.attend(*batch[1][:3], return_lse=True, **batch[1][3])  # after the failure
    for future, (q, k, v, o) in zip(futures, batch, strict=True):
        check(future.result(), q, k, v, o)
    check(last, *batch[1])
    assert details.result().request_id == "d"
    with pytest.raises(attnd.AttendError) as e:
        bad.result()
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and e.value.request_id
    with pytest.raises(RuntimeError, match="closed"):
        stream.submit(*batch[0][:3])


def test_aio_stream(server, rng):
    batch = problems(rng, 9)

    async def main():
        async with attnd.aio.Client(server.target, timeout=60) as client:
            async with client.stream() as stream:
                futures = [await stream.submit(q, k, v, return_lse=True, **o)
                           for q, k, v, o in batch]
                bad = await stream.submit(np.zeros((1, 2, 2, 4), np.float32),
                                          np.zeros((1, 2, 2, 5), np.float32),
                                          np.zeros((1, 2, 2, 4), np.float32))
                last = await stream.attend(*batch[0][:3], return_lse=True, **batch[0][3])
                answers = await asyncio.gather(*futures)
                with pytest.raises(attnd.AttendError) as e:
                    await bad
                assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            return answers, last
    answers, last = asyncio.run(main())
    for answer, (q, k, v, o) in zip(answers, batch, strict=True):
        check(answer, q, k, v, o)
    check(last, *batch[0])


def test_streams_retry_in_stream_when_the_queue_is_full(start_server, rng):
    # While the server's worker and its one queue slot are busy, stream requests are answered
    # RESOURCE_EXHAUSTED in the stream; the client sends them again on it until they run.
    server = start_server(ONE_SLOT)
    q = rng.standard_normal((1, 16, 2, 8), np.float32)
    want = ref.attention(q, q, q)[0]
    retries = []
    policy = attnd.RetryPolicy(max_attempts=1000, initial_backoff=0.02, max_backoff=0.3)

    async def aio_burst():
        async with attnd.aio.Client(server.target, retry=policy,
                                    on_retry=retries.append) as aclient:
            async with aclient.stream(timeout=300) as astream:
                fs = [await astream.submit(q, q, q) for _ in range(4)]
            return await asyncio.gather(*fs)

    with attnd.Client(server.target, retry=policy, on_retry=retries.append) as client:
        with full_queue(server):
            with client.stream(timeout=300) as stream:
                futures = [stream.submit(q, q, q) for _ in range(4)]
        for f in futures:
            assert ref.max_error(f.result(), want) <= ref.TOLERANCE["f32"]
        synchronous_retries = len(retries)
        with full_queue(server):
            outs = asyncio.run(aio_burst())
        for out in outs:
            assert ref.max_error(out, want) <= ref.TOLERANCE["f32"]
    assert synchronous_retries > 0 and len(retries) > synchronous_retries
    assert {r.code for r in retries} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert server.metric("attnd_requests_total", method="AttendStream",
                         code="RESOURCE_EXHAUSTED") == len(retries)
