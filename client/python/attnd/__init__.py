"""attnd: the Python client of attnd, exact attention as a gRPC service.

    import attnd
    with attnd.Client("127.0.0.1:50051") as client:
        out = client.attend(q, k, v, causal="bottom_right")            # q [B, Mq, Hq, D]
        out, lse = client.attend(q, k, v, return_lse=True)

attnd.aio.Client is the asyncio twin; Client.stream() the AttendStream call; merge_partial
combines attention over key/value shards.
"""

from attnd._request import AttendResult, DeviceInfo, Execution, ServerInfo
from attnd._retry import NO_RETRY, RetryEvent, RetryPolicy
from attnd.client import Client, Stream
from attnd.errors import AttendError
from attnd.merge import merge_partial

__version__ = "0.1.0"
__all__ = ["AttendError", "AttendResult", "Client", "DeviceInfo", "Execution", "NO_RETRY",
           "RetryEvent", "RetryPolicy", "ServerInfo", "Stream", "merge_partial"]
