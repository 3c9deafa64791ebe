"""The blocking client: attnd.Client, and its AttendStream (attnd.client.Stream)."""

from __future__ import annotations

import concurrent.futures
import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from attnd import _channel, _request
from attnd._retry import DEFAULT_RETRY, Deadline, RetryEvent, RetryPolicy
from attnd._stream_book import Pending, StreamBook
from attnd.errors import AttendError
from attnd.v1 import attention_pb2 as pb
from attnd.v1 import attention_pb2_grpc as pb_grpc

DEFAULT = object()  # "the client's timeout" (None would mean: no deadline)


class Client:
    """A connection to attnd (or to several behind one target).

    target: "host:port", "dns:///name:port", "ipv4:127.0.0.1:5001,127.0.0.1:5002", ...
    credentials: grpc.ssl_channel_credentials(...) for TLS (mutual TLS with a client key and
        certificate); None for plaintext.
    token: sent as `authorization: Bearer <token>` on every call; a callable is asked each call.
    timeout: default deadline of each call in seconds, retries included (None: no deadline).
    retry: RetryPolicy (attnd.NO_RETRY to turn retries off).
    load_balancing: "round_robin" spreads calls over every address the target resolves to.
    on_retry: called with a RetryEvent before each backoff wait.
    """

    def __init__(self, target: str, *, credentials: grpc.ChannelCredentials | None = None,
                 token: _channel.Token = None, timeout: float | None = None,
                 retry: RetryPolicy = DEFAULT_RETRY, load_balancing: str | None = None,
                 max_message_bytes: int = _channel.DEFAULT_MAX_MESSAGE_BYTES,
                 options: Sequence[tuple[str, Any]] = (),
                 metadata: Sequence[tuple[str, str]] = (),
                 interceptors: Sequence[Any] = (),
                 on_retry: Callable[[RetryEvent], None] | None = None, seed: int | None = None):
        self._channel = _channel.make_channel(
            grpc, target, credentials,
            _channel.channel_options(max_message_bytes, load_balancing, options), interceptors)
        self._stub = pb_grpc.AttentionStub(self._channel)
        self._token = token
        self._extra_metadata = tuple(metadata)
        self._timeout = timeout
        self._retry = retry
        self._on_retry = on_retry
        self._rng = random.Random(seed)

    # --- calls ---------------------------------------------------------------------------------
    def attend(self, q: Any, k: Any, v: Any, *, bias: Any = None, causal: str | None = None,
               kv_lengths: Any = None, scale: float | None = None, return_lse: bool = False,
               window: tuple[int | None, int | None] | None = None, layout: str = "BMHK",
               variant: str = "auto", q_chunk: int = 0, kv_chunk: int = 0, priority: int = 0,
               request_id: str | None = None, timeout: float | None = DEFAULT,
               details: bool = False) -> Any:
        """softmax(q·kᵀ·scale + bias + mask)·v on the server.

        q [B, Mq, Hq, D], k [B, Mk, Hkv, D], v [B, Mk, Hkv, Dv] (layout "BMHK"; "BHMK" swaps the
        middle axes), NumPy (float32, float16, ml_dtypes.bfloat16) or torch tensors.
        causal: None, "top_left" or "bottom_right"; window: (left, right), None/negative unbounded;
        kv_lengths: B valid key counts; bias: broadcastable to [B, Hq, Mq, Mk] (bool: may attend).
        Returns out [B, Mq, Hq, Dv] in q's dtype and kind (torch on q's device), or (out, lse)
        with return_lse (lse [B, Hq, Mq] f32), or an AttendResult with details=True.
        Raises AttendError (a grpc.RpcError) once retries are spent.
        """
        request = _request.build_request(
            q, k, v, bias=bias, causal=causal, kv_lengths=kv_lengths, scale=scale,
            return_lse=return_lse, window=window, layout=layout, variant=variant, q_chunk=q_chunk,
            kv_chunk=kv_chunk, priority=priority, request_id=request_id)
        response = self._call(self._stub.Attend, request, timeout, request.request_id)
        return _request.shape_answer(_request.decode_response(response, q), return_lse, details)

    def info(self, *, timeout: float | None = DEFAULT) -> _request.ServerInfo:
        """GetServerInfo: version, backend, devices, dtypes, variants, limits."""
        return _request.decode_info(
            self._call(self._stub.GetServerInfo, pb.GetServerInfoRequest(), timeout, ""))

    def stream(self, *, timeout: float | None = DEFAULT) -> Stream:
        """An AttendStream; `timeout` bounds the whole stream. Use as a context manager."""
        return Stream(self, self._timeout if timeout is DEFAULT else timeout)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- internals -----------------------------------------------------------------------------
    def _metadata(self) -> list[tuple[str, str]]:
        return _channel.call_metadata(self._token, self._extra_metadata)

    def _call(self, method: Callable, request: Any, timeout: Any, request_id: str) -> Any:
        """One unary call, retried per the policy within one deadline for all attempts."""
        deadline = Deadline(self._timeout if timeout is DEFAULT else timeout)
        attempt = 0
        while True:
            attempt += 1
            try:
                return method(request, timeout=deadline.remaining(), metadata=self._metadata())
            except grpc.RpcError as e:
                delay = self._retry.delay(attempt, e.code(), deadline.remaining(), self._rng)
                if delay is None:
                    raise AttendError.from_rpc(e, attempts=attempt, request_id=request_id) from e
                if self._on_retry is not None:
                    self._on_retry(RetryEvent(attempt, e.code(), e.details() or "", delay,
                                              request_id))
                time.sleep(delay)


class Stream:
    """A bidirectional AttendStream. submit() sends at once and returns a Future answered by
    request_id, in whatever order the server finishes. A request failed in-stream with a
    retryable code is sent again on the same stream after a backoff. close() waits for every
    answer, then ends the stream. A broken stream fails every request still waiting.

        with client.stream() as s:
            futures = [s.submit(q, k, v, causal="bottom_right") for q, k, v in problems]
            outs = [f.result() for f in futures]
    """

    def __init__(self, client: Client, timeout: float | None):
        self._client = client
        self._book = StreamBook(client._retry, client._rng, client._on_retry)
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()  # requests; None ends the stream
        self._closing = False
        self._broken: AttendError | None = None
        self._call = client._stub.AttendStream(self._requests(), timeout=timeout,
                                               metadata=client._metadata())
        self._reader = threading.Thread(target=self._read, name="attnd-stream", daemon=True)
        self._reader.start()

    def submit(self, q: Any, k: Any, v: Any, *, details: bool = False,
               timeout: float | None = None, **options: Any) -> concurrent.futures.Future:
        """Sends one request (options as Client.attend). `timeout` bounds its retries only: the
        stream's own deadline bounds everything; use future.result(timeout) to stop waiting."""
        if self._closing:
            raise RuntimeError("submit() on a closed stream")
        request = _request.build_request(q, k, v, **options)
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._book.add(Pending(request, q, details, Deadline(timeout), future))
        if self._broken is not None:  # the reader has gone: nobody would answer
            _settle(future, error=self._broken)
        else:
            self._outbox.put(request)
        return future

    def attend(self, q: Any, k: Any, v: Any, **options: Any) -> Any:
        return self.submit(q, k, v, **options).result()

    def close(self) -> None:
        """Waits for every answer, ends the stream and the reader."""
        self._closing = True
        concurrent.futures.wait([p.handle for p in self._book.waiting()])
        self._outbox.put(None)
        self._reader.join()

    def cancel(self) -> None:
        self._closing = True
        self._call.cancel()
        self._reader.join()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.cancel() if exc_type is not None else self.close()

    def _requests(self):
        while (request := self._outbox.get()) is not None:
            yield request

    def _read(self) -> None:
        error = AttendError(grpc.StatusCode.UNAVAILABLE, "the stream ended before answering")
        try:
            for response in self._call:
                outcome = self._book.answer(response)
                if outcome.kind == "done":
                    _settle(outcome.pending.handle, value=outcome.value)
                elif outcome.kind == "fail":
                    _settle(outcome.pending.handle, error=outcome.error)
                elif outcome.kind == "retry":
                    timer = threading.Timer(outcome.delay, self._outbox.put,
                                            args=(outcome.pending.request,))
                    timer.daemon = True
                    timer.start()
        except grpc.RpcError as e:
            error = AttendError.from_rpc(e)
        except BaseException as e:  # e.g. an on_retry callback that raised: fail, never hang
            error = AttendError(grpc.StatusCode.INTERNAL, f"the stream's reader failed: {e!r}")
            self._call.cancel()
            raise
        finally:
            self._broken = error
            for pending, err in self._book.fail_all(error):
                _settle(pending.handle, error=err)


def _settle(future: concurrent.futures.Future, *, value: Any = None,
            error: BaseException | None = None) -> None:
    """Sets a future's answer once (a broken stream and a late answer may race)."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
    except concurrent.futures.InvalidStateError:
        pass
