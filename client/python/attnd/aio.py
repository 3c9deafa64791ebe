"""The asyncio client: attnd.aio.Client, and its AttendStream (attnd.aio.Stream). Same options,
answers, retries and errors as the blocking attnd.Client, on grpc.aio."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from typing import Any

import grpc
import grpc.aio

from attnd import _channel, _request
from attnd._retry import DEFAULT_RETRY, Deadline, RetryEvent, RetryPolicy
from attnd._stream_book import Pending, StreamBook
from attnd.client import DEFAULT
from attnd.errors import AttendError
from attnd.v1 import attention_pb2 as pb
from attnd.v1 import attention_pb2_grpc as pb_grpc


class Client:
    """As attnd.Client (same arguments); interceptors are grpc.aio client interceptors. Create it
    inside the event loop that uses it."""

    def __init__(self, target: str, *, credentials: grpc.ChannelCredentials | None = None,
                 token: _channel.Token = None, timeout: float | None = None,
                 retry: RetryPolicy = DEFAULT_RETRY, load_balancing: str | None = None,
                 max_message_bytes: int = _channel.DEFAULT_MAX_MESSAGE_BYTES,
                 options: Sequence[tuple[str, Any]] = (),
                 metadata: Sequence[tuple[str, str]] = (),
                 interceptors: Sequence[Any] = (),
                 on_retry: Callable[[RetryEvent], None] | None = None, seed: int | None = None):
        self._channel = _channel.make_channel(
            grpc.aio, target, credentials,
            _channel.channel_options(max_message_bytes, load_balancing, options), interceptors)
        self._stub = pb_grpc.AttentionStub(self._channel)
        self._token = token
        self._extra_metadata = tuple(metadata)
        self._timeout = timeout
        self._retry = retry
        self._on_retry = on_retry
        self._rng = random.Random(seed)

    async def attend(self, q: Any, k: Any, v: Any, *, bias: Any = None,
                     causal: str | None = None, kv_lengths: Any = None,
                     scale: float | None = None, return_lse: bool = False,
                     window: tuple[int | None, int | None] | None = None, layout: str = "BMHK",
                     variant: str = "auto", q_chunk: int = 0, kv_chunk: int = 0,
                     priority: int = 0, request_id: str | None = None,
                     timeout: float | None = DEFAULT, details: bool = False) -> Any:
        """As attnd.Client.attend."""
        request = _request.build_request(
            q, k, v, bias=bias, causal=causal, kv_lengths=kv_lengths, scale=scale,
            return_lse=return_lse, window=window, layout=layout, variant=variant, q_chunk=q_chunk,
            kv_chunk=kv_chunk, priority=priority, request_id=request_id)
        response = await self._call(self._stub.Attend, request, timeout, request.request_id)
        return _request.shape_answer(_request.decode_response(response, q), return_lse, details)

    async def info(self, *, timeout: float | None = DEFAULT) -> _request.ServerInfo:
        return _request.decode_info(
            await self._call(self._stub.GetServerInfo, pb.GetServerInfoRequest(), timeout, ""))

    def stream(self, *, timeout: float | None = DEFAULT) -> Stream:
        """An AttendStream: `async with client.stream() as s: out = await s.attend(q, k, v)`."""
        return Stream(self, self._timeout if timeout is DEFAULT else timeout)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def _metadata(self) -> list[tuple[str, str]]:
        return _channel.call_metadata(self._token, self._extra_metadata)

    async def _call(self, method: Callable, request: Any, timeout: Any, request_id: str) -> Any:
        deadline = Deadline(self._timeout if timeout is DEFAULT else timeout)
        attempt = 0
        while True:
            attempt += 1
            try:
                return await method(request, timeout=deadline.remaining(),
                                    metadata=self._metadata())
            except grpc.RpcError as e:
                delay = self._retry.delay(attempt, e.code(), deadline.remaining(), self._rng)
                if delay is None:
                    raise AttendError.from_rpc(e, attempts=attempt, request_id=request_id) from e
                if self._on_retry is not None:
                    self._on_retry(RetryEvent(attempt, e.code(), e.details() or "", delay,
                                              request_id))
                await asyncio.sleep(delay)


class Stream:
    """As attnd.client.Stream, for asyncio: `await submit(...)` sends one request and gives an
    asyncio.Future of its answer; `await attend(...)` waits for the answer too."""

    def __init__(self, client: Client, timeout: float | None):
        self._client = client
        self._timeout = timeout
        self._book = StreamBook(client._retry, client._rng, client._on_retry)
        self._call: Any = None
        self._reader: asyncio.Task | None = None
        self._write_lock = asyncio.Lock()  # one write in flight at a time
        self._closing = False
        self._broken: AttendError | None = None
        self._tasks: set[asyncio.Task] = set()  # resends waiting out their backoff

    async def __aenter__(self) -> Stream:
        self._start()
        return self

    async def __aexit__(self, exc_type, *exc) -> None:
        await (self.cancel() if exc_type is not None else self.close())

    def _start(self) -> None:
        if self._call is None:
            self._call = self._client._stub.AttendStream(timeout=self._timeout,
                                                         metadata=self._client._metadata())
            self._reader = asyncio.create_task(self._read())

    async def submit(self, q: Any, k: Any, v: Any, *, details: bool = False,
                     timeout: float | None = None, **options: Any) -> asyncio.Future:
        """Options as Client.attend; `timeout` bounds this request's retries."""
        if self._closing:
            raise RuntimeError("submit() on a closed stream")
        self._start()
        request = _request.build_request(q, k, v, **options)
        future = asyncio.get_running_loop().create_future()
        self._book.add(Pending(request, q, details, Deadline(timeout), future))
        if self._broken is not None:
            _settle(future, error=self._broken)
        else:
            await self._write(request)
        return future

    async def attend(self, q: Any, k: Any, v: Any, **options: Any) -> Any:
        return await (await self.submit(q, k, v, **options))

    async def close(self) -> None:
        """Waits for every answer, then ends the stream."""
        self._closing = True
        if self._call is None:
            return
        await asyncio.gather(*(p.handle for p in self._book.waiting()), return_exceptions=True)
        if self._broken is None:
            try:
                await self._call.done_writing()
            except grpc.RpcError:
                pass  # the reader reports how the stream ended
        await self._reader

    async def cancel(self) -> None:
        self._closing = True
        if self._call is not None:
            self._call.cancel()
            await self._reader

    async def _write(self, request: pb.AttendRequest) -> None:
        try:
            async with self._write_lock:
                await self._call.write(request)
        except (grpc.RpcError, asyncio.InvalidStateError):
            pass  # the stream broke: the reader fails every waiting request

    async def _resend(self, request: pb.AttendRequest, delay: float) -> None:
        await asyncio.sleep(delay)
        if self._broken is None:
            await self._write(request)

    async def _read(self) -> None:
        error = AttendError(grpc.StatusCode.UNAVAILABLE, "the stream ended before answering")
        try:
            while (response := await self._call.read()) is not grpc.aio.EOF:
                outcome = self._book.answer(response)
                if outcome.kind == "done":
                    _settle(outcome.pending.handle, value=outcome.value)
                elif outcome.kind == "fail":
                    _settle(outcome.pending.handle, error=outcome.error)
                elif outcome.kind == "retry":
                    task = asyncio.create_task(self._resend(outcome.pending.request,
                                                            outcome.delay))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        except grpc.RpcError as e:
            error = AttendError.from_rpc(e)
        except asyncio.CancelledError:
            error = AttendError(grpc.StatusCode.CANCELLED, "the stream was cancelled")
        except BaseException as e:  # e.g. an on_retry callback that raised: fail, never hang
            error = AttendError(grpc.StatusCode.INTERNAL, f"the stream's reader failed: {e!r}")
            self._call.cancel()
            raise
        finally:
            self._broken = error
            for pending, err in self._book.fail_all(error):
                _settle(pending.handle, error=err)


def _settle(future: asyncio.Future, *, value: Any = None,
            error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
