"""Channel construction shared by the blocking and asyncio clients: message size limits, load
balancing, TLS credentials and the bearer token."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import grpc

DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024 * 1024  # attnd's server.max_message_bytes default

Token = str | Callable[[], str] | None


def channel_options(max_message_bytes: int, load_balancing: str | None,
                    extra: Sequence[tuple[str, Any]] = ()) -> list[tuple[str, Any]]:
    """gRPC's default receive limit is 4 MiB, far below an attention output: lift both limits.
    load_balancing ("round_robin", "pick_first") applies to targets that resolve to several
    addresses, e.g. "ipv4:127.0.0.1:5001,127.0.0.1:5002" or a headless Kubernetes Service."""
    options = [("grpc.max_send_message_length", max_message_bytes),
               ("grpc.max_receive_message_length", max_message_bytes)]
    if load_balancing:
        config = {"loadBalancingConfig": [{load_balancing: {}}]}
        options.append(("grpc.service_config", json.dumps(config)))
    return options + list(extra)


def call_metadata(token: Token, extra: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """Per-call metadata: `authorization: Bearer <token>` when a token (or a function returning
    the current one, for tokens that rotate) is set, plus any extra pairs."""
    metadata = list(extra)
    value = token() if callable(token) else token
    if value:
        metadata.append(("authorization", f"Bearer {value}"))
    return metadata


def make_channel(module: Any, target: str, credentials: grpc.ChannelCredentials | None,
                 options: list[tuple[str, Any]], interceptors: Sequence[Any] = ()) -> Any:
    """module is grpc or grpc.aio; a secure channel when credentials are given."""
    if module is grpc:
        channel = (grpc.secure_channel(target, credentials, options) if credentials
                   else grpc.insecure_channel(target, options))
        return grpc.intercept_channel(channel, *interceptors) if interceptors else channel
    kwargs = {"options": options, "interceptors": list(interceptors) or None}
    return (module.secure_channel(target, credentials, **kwargs) if credentials
            else module.insecure_channel(target, **kwargs))
