"""AttendError: how every failed call of this client surfaces, unary or in a stream."""

from __future__ import annotations

import grpc

# google.rpc.Code number -> grpc.StatusCode (RequestStatus.code in a stream answer is the number).
_CODE_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def status_code(number: int) -> grpc.StatusCode:
    return _CODE_BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN)


class AttendError(grpc.RpcError):
    """A call that failed after `attempts` tries.

    Subclasses grpc.RpcError and answers code() and details() as a grpc.Call does, so code that
    already catches grpc.RpcError keeps working.
    """

    def __init__(self, code: grpc.StatusCode, details: str, *, attempts: int = 1,
                 request_id: str = ""):
        super().__init__(f"{code.name}: {details}" + (f" (after {attempts} attempts)"
                                                       if attempts > 1 else ""))
        self._code = code
        self._details = details
        self.attempts = attempts
        self.request_id = request_id

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    @classmethod
    def from_rpc(cls, error: grpc.RpcError, *, attempts: int = 1,
                 request_id: str = "") -> AttendError:
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        details = error.details() if hasattr(error, "details") else str(error)
        return cls(code or grpc.StatusCode.UNKNOWN, details or "", attempts=attempts,
                   request_id=request_id)
