"""Access tokens: app tokens (§1.1–1.3), user OAuth codes and tokens (§1.5), expiry on `state.clock`.

Semantics from the reference: a token lives 7200 s; asking again while it is valid returns the
**same** token (and extends it); after expiry a new one is issued. Expired tokens are remembered so
the legacy API can answer 42001 (expired) rather than 40014 (unknown). `expire_all()` is what
`POST /_emulator/tokens/expire` and the guard's token fault call.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass

TOKEN_TTL_S = 7200
REFRESH_TTL_S = 30 * 86400  # user refresh tokens: 30 days
PRUNE_AT = 10_000  # tokens kept before expired ones are pruned
AUTH_CODE_TTL_S = 300  # (uncertain) the reference gives no lifetime for authCode; 5 minutes


@dataclass
class Token:
    value: str
    kind: str  # "app" | "user"
    expires_at: float
    unionid: str = ""  # the user, for user tokens


class TokenStore:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._tokens: dict[str, Token] = {}
        self._app_token: Token | None = None
        self._codes: dict[str, tuple[str, float]] = {}  # authCode -> (unionid, expires_at)
        self._refresh: dict[str, tuple[str, float]] = {}  # refreshToken -> (unionid, expires_at)
        self._user_tokens: dict[str, Token] = {}  # unionid -> current token

    def _new(self, kind: str, unionid: str = "") -> Token:
        if len(self._tokens) >= PRUNE_AT:
            self._prune()
        tok = Token(secrets.token_hex(16), kind, self._clock() + TOKEN_TTL_S, unionid)
        self._tokens[tok.value] = tok
        return tok

    def _prune(self) -> None:
        """Forget tokens expired for a day (they would answer 40014 instead of 42001) and stale codes:
        a long fault-injection run that expires tokens over and over must not grow without bound."""
        now = self._clock()
        self._tokens = {v: t for v, t in self._tokens.items() if t.expires_at > now - 86400}
        self._codes = {c: e for c, e in self._codes.items() if e[1] > now}
        self._refresh = {r: e for r, e in self._refresh.items() if e[1] > now}

    def app_token(self) -> Token:
        now = self._clock()
        tok = self._app_token
        if tok is None or tok.expires_at <= now:
            tok = self._app_token = self._new("app")
        else:
            tok.expires_at = now + TOKEN_TTL_S  # same token, extended
        return tok

    def seconds_left(self, tok: Token) -> int:
        return max(0, math.ceil(tok.expires_at - self._clock()))

    def check(self, value: str | None) -> tuple[Token | None, str]:
        """(token, "") when valid, else (None, "missing" | "invalid" | "expired")."""
        if not value:
            return None, "missing"
        tok = self._tokens.get(value)
        if tok is None:
            return None, "invalid"
        if tok.expires_at <= self._clock():
            return None, "expired"
        return tok, ""

    def expire_all(self) -> None:
        now = self._clock()
        for tok in self._tokens.values():
            tok.expires_at = min(tok.expires_at, now - 1)

    # -- user OAuth ----------------------------------------------------------------------------
    def issue_code(self, unionid: str) -> str:
        code = secrets.token_hex(16)
        self._codes[code] = (unionid, self._clock() + AUTH_CODE_TTL_S)
        return code

    def redeem_code(self, code: str) -> tuple[Token, str] | None:
        entry = self._codes.pop(code, None)  # single use
        if entry is None or entry[1] <= self._clock():
            return None
        return self._user_token(entry[0])

    def redeem_refresh(self, refresh: str) -> tuple[Token, str] | None:
        entry = self._refresh.pop(refresh, None)  # rotated on use
        if entry is None or entry[1] <= self._clock():
            return None
        return self._user_token(entry[0])

    def _user_token(self, unionid: str) -> tuple[Token, str]:
        now = self._clock()
        tok = self._user_tokens.get(unionid)
        if tok is None or tok.expires_at <= now:
            tok = self._user_tokens[unionid] = self._new("user", unionid)
        refresh = secrets.token_hex(16)
        self._refresh[refresh] = (unionid, now + REFRESH_TTL_S)
        return tok, refresh
