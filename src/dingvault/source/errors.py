"""One exception hierarchy for both API generations (dingtalk-api.md §0.1, §0.5, §0.6).

Legacy (`oapi`) errors arrive as HTTP 200 with a non-zero `errcode`; new (`api`) errors as an HTTP
4xx/5xx with `{"code", "message", "requestid"}`. Both become a `DingTalkError` carrying `.code`
(the errcode as a string, or the new-API code), `.message`, `.request_id` and `.endpoint` (the
API's path template, e.g. `/v1.0/storage/spaces/{spaceId}/dentries`).
"""

from __future__ import annotations


class DingTalkError(Exception):
    """An error answer from DingTalk (or a transport failure, once retries are spent)."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        request_id: str | None = None,
        endpoint: str | None = None,
        status: int | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.request_id = request_id
        self.endpoint = endpoint
        self.status = status
        super().__init__(self._describe())

    def _describe(self) -> str:
        parts = [f"{self.endpoint or '?'}: {self.message}"]
        if self.code is not None:
            parts.append(f"code={self.code}")
        if self.status is not None:
            parts.append(f"http={self.status}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return " ".join(parts)


class AuthenticationError(DingTalkError):
    """Bad credentials or a token DingTalk refuses even after one refresh."""


class TokenExpired(AuthenticationError):
    """`40014`/`42001`/`40001`/`InvalidAuthentication`: the client refreshes once and retries."""


class PermissionDenied(DingTalkError):
    """The app lacks a scope (or the operator cannot see the resource).

    `required_scopes` names what the admin must grant: from `accessdenieddetail.requiredScopes`
    (new API) or, for legacy `60011`, from the connector's endpoint → scope table.
    """

    def __init__(self, message: str, *, required_scopes: list[str] | None = None, **kw: object) -> None:
        self.required_scopes = list(required_scopes or [])
        if self.required_scopes:
            message = f"{message} (missing scope: {', '.join(self.required_scopes)})"
        super().__init__(message, **kw)  # type: ignore[arg-type]


class IpNotWhitelisted(PermissionDenied):
    """`60020` / `Forbidden.AccessDenied.IpNotInWhiteList`: this server's IP is not allowed."""


class NotFound(DingTalkError):
    """The resource does not exist (any more): deleted department, user, file, instance..."""


class Unavailable(DingTalkError):
    """The feature is not available to this org (e.g. exclusive-edition APIs, HRM not enabled)."""


class Throttled(DingTalkError):
    """A rate limit was hit (`90018`, `90002`, `QpsLimitFor*`): retried with back-off."""

    retryable = True


class QuotaExhausted(DingTalkError):
    """The org's monthly call quota is spent (`90020` / `ApiCountLimitForOrg`).

    Not retried: it stops the family that hit it (reported), the others go on with exempt APIs.
    """


class IpBanned(DingTalkError):
    """The per-IP ban answer (an HTML page, or `{"status":1111,...,"punish":"deny"}`)."""

    retryable = True

    def __init__(self, message: str, *, wait_seconds: float, **kw: object) -> None:
        self.wait_seconds = wait_seconds
        super().__init__(message, **kw)  # type: ignore[arg-type]


class TransientError(DingTalkError):
    """A temporary failure (`-1`, `15`, `88` with empty sub_code, 5xx, 504, connection errors)."""

    retryable = True


class BadResponse(DingTalkError):
    """The answer was not what the API promises (malformed JSON, an HTML page, a wrong shape)."""

    retryable = True


class DownloadError(DingTalkError):
    """A content download failed for good (after resuming with Range as often as allowed)."""


class IncompleteCollection(DingTalkError):
    """A collector finished, but some containers or records could not be read (listed in `.problems`).

    Raised at the *end* of a collection, after every readable batch was yielded, so the engine
    stores what was read and reports the family as incomplete; cursors of the failed parts were
    not advanced, so the next run tries them again.
    """

    def __init__(self, collector: str, problems: list[str]) -> None:
        self.problems = list(problems)
        shown = "; ".join(self.problems[:5]) + (
            f"; … {len(self.problems) - 5} more" if len(self.problems) > 5 else ""
        )
        super().__init__(f"{len(self.problems)} part(s) could not be read: {shown}", endpoint=collector)
