"""Errors answered in the real API's shape, so clients exercise their real error handling."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ApiError(Exception):
    """An HTTP error with the body `{"error": {"message", "type", "param", "code"}}`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON body the real API sends with this error."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def not_found(message: str, *, param: str | None = None, code: str | None = None) -> ApiError:
    """A 404 for an object that does not exist (or no longer does)."""
    return ApiError(404, message, param=param, code=code)


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> ApiError:
    """A 400 for a request the real API would reject."""
    return ApiError(400, message, param=param, code=code)
