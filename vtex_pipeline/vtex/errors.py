"""Errors raised by the VTEX client.

Every message names the call (method + path, never the query string or credentials) so an operator
can tell which endpoint failed and what to do about it.
"""

from __future__ import annotations

from vtex_pipeline.vtex.permissions import Permission

ROLE_NAME = "ICOMMKT_Integration"


class VtexError(Exception):
    """Any failure talking to VTEX. `status` is the HTTP status when there was a response."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str | None = None,
        path: str | None = None,
        call: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.method = method
        self.path = path
        self.call = call

    def __str__(self) -> str:
        return self.message


class VtexAuthError(VtexError):
    """401: the key/token pair is wrong or the key is not linked to any role."""

    def __init__(
        self,
        *,
        method: str,
        path: str,
        call: str | None = None,
        credential_vars: str = "VTEX_APP_KEY / VTEX_APP_TOKEN",
    ) -> None:
        super().__init__(
            f"VTEX rejected the app key or token (401) on {method} {path}: check {credential_vars} "
            "and that the key is linked to a role",
            status=401,
            method=method,
            path=path,
            call=call,
        )


class VtexPermissionError(VtexError):
    """403: the key is valid but its role lacks the License Manager resource this route needs."""

    def __init__(
        self, *, method: str, path: str, permission: Permission | None, call: str | None = None
    ) -> None:
        self.permission = permission
        if permission is not None:
            message = (
                f"VTEX refused {method} {path} (403): the key lacks {permission.product} / "
                f"{permission.resource}: add it to the integration role ({ROLE_NAME}) in VTEX Admin > "
                "Account settings > User roles"
            )
        else:
            message = (
                f"VTEX refused {method} {path} (403): the key's role lacks the permission for this "
                f"route: check the integration role ({ROLE_NAME}) in VTEX Admin > Account settings > "
                "User roles"
            )
        super().__init__(message, status=403, method=method, path=path, call=call)


class VtexNotFound(VtexError):
    """404: the resource does not exist (or is older than the 2 years OMS keeps reachable)."""


class VtexRequestFailed(VtexError):
    """Retryable failures (429, 5xx, timeouts, broken bodies) persisted through every attempt."""

    def __init__(
        self,
        *,
        method: str,
        path: str,
        attempts: int,
        last_status: int | None,
        last_error: str | None,
        call: str | None = None,
    ) -> None:
        self.attempts = attempts
        self.last_status = last_status
        self.last_error = last_error
        last = f"last status {last_status}" if last_status is not None else f"last error {last_error}"
        if last_status is not None and last_error:
            last = f"last status {last_status} ({last_error})"
        name = f"{call}: " if call else ""
        super().__init__(
            f"VTEX call {name}{method} {path} failed after {attempts} attempts; {last}",
            status=last_status,
            method=method,
            path=path,
            call=call,
        )


class RecordError(ValueError):
    """A VTEX record that cannot be turned into a row (missing id, unparsable required date, ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
