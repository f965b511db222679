"""Named API tokens with scopes: who may call the API, and what each may do.

A token is ``bsk_`` and 192 random bits, shown once when it is created; the archive keeps only its
SHA-256 (a lookup by hash: nothing about the secret can be learnt from how long it takes). Scopes
nest: ``read`` (search, get, related, analyze without archiving), ``write`` (also archive and
delete), ``admin`` (also manage tokens). Once a token has been created — revoked or expired ones
count: revoking the last token closes the API, never opens it — or ``BACKSTORY_API_TOKEN`` is set
(the one-person shortcut, an admin token named ``api-token``), every ``/api/`` request needs one. A
server notices new, revoked and expired tokens within ``CHECK_EVERY`` seconds, without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

from cachetools import TTLCache

from . import errors
from .archive.storage import AfterCommit, Storage, TokenRow, Writer, tokens_ever
from .story import utc_now

PREFIX = "bsk_"
SCOPES = ("read", "write", "admin")
VISIBILITIES = ("team", "private")
CHECK_EVERY = 2.0  # seconds a verified token (or its absence) is trusted before the archive is asked again
USED_EVERY = 60.0  # seconds between writes of a token's last use
ENV_TOKEN_NAME = "api-token"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(24)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def is_active(token: TokenRow, now: str) -> bool:
    return token.revoked is None and (token.expires is None or token.expires > now)


class Caller(NamedTuple):
    """Who is calling: a token's name and scope (``anyone`` with every right on a server without
    tokens), and what its stories are stored as when a request does not say."""

    name: str
    scope: str
    token_id: int | None = None
    visibility: str = "team"

    def may(self, scope: str) -> bool:
        return SCOPES.index(self.scope) >= SCOPES.index(scope)

    @property
    def who(self) -> str | None:
        """How the archive records this caller's stories; None on a server without tokens."""
        if self.token_id is not None:
            return f"token:{self.token_id}"
        return None if self is NOBODY_REQUIRED else self.name

    def owner(self, visibility: str | None) -> str:
        """Whose the caller's new stories are: "" for team stories, the caller's :attr:`who` for
        private ones; ``visibility`` None takes the token's default. On a server without tokens
        every caller is the same person, so nothing could be private to one of them: asking for a
        private story there is refused (400) rather than stored as a team story unawares."""
        if (visibility or self.visibility) == "team":
            return ""
        if self.who is None:
            raise errors.InvalidInput("private stories need API tokens: on a server without tokens every caller is "
                                      "the same person; create one for each member with 'backstory tokens create NAME'")
        return self.who


NOBODY_REQUIRED = Caller("anyone", "admin")


class TokenStore:
    """The tokens of one archive, for the CLI (create, list, revoke) and the server (verify)."""

    def __init__(self, storage: Storage, env_token: str = "") -> None:
        self.storage = storage
        self.env_token = env_token
        self._verified: TTLCache[str, TokenRow | None] = TTLCache(maxsize=4096, ttl=CHECK_EVERY)
        self._any: TTLCache[str, bool] = TTLCache(maxsize=1, ttl=CHECK_EVERY)
        self._used: TTLCache[int, bool] = TTLCache(maxsize=4096, ttl=USED_EVERY)
        self._lock = threading.Lock()

    # ---- management (the CLI) ---------------------------------------------------------------
    async def create(self, name: str, scope: str = "write", expires_days: float | None = None,
                     visibility: str = "team") -> str:
        """A new token's secret (shown once); ValueError for a bad name, scope or visibility, or a
        name in use. ``visibility``: what the token's stories are stored as unless a request says."""
        if not _NAME.match(name) or name == ENV_TOKEN_NAME:
            raise ValueError(f"a token's name is 1-64 letters, digits, '.', '_', '@' or '-' (not {ENV_TOKEN_NAME!r})")
        if scope not in SCOPES:
            raise ValueError(f"the scope is one of {', '.join(SCOPES)}")
        if visibility not in VISIBILITIES:
            raise ValueError(f"the visibility is one of {', '.join(VISIBILITIES)}")
        expires = None
        if expires_days is not None:
            expires = (datetime.now(timezone.utc) + timedelta(days=expires_days)).strftime("%Y-%m-%dT%H:%M:%SZ")
        secret = new_secret()

        def job(w: Writer) -> tuple[bool, AfterCommit]:
            if any(t.name == name for t in w.tokens()):
                return False, None
            w.add_token(name, scope, digest(secret), utc_now(), expires, visibility)
            return True, None

        if not await self.storage.write(job):
            raise ValueError(f"there is a token named {name!r} already (revoke it first)")
        return secret

    async def list(self) -> list[TokenRow]:
        return await self.storage.read(lambda r: r.tokens())

    async def names(self, whos: list[str]) -> list[str]:
        """The names of claimants as the archive records them (a revoked token keeps its name)."""
        if not any(w.startswith("token:") for w in whos):
            return list(whos)
        by_id = {f"token:{t.id}": t.name for t in await self.storage.read(lambda r: r.tokens(with_revoked=True))}
        return [by_id.get(w, w) for w in whos]

    async def who(self, name: str) -> str:
        """How the archive records the stories of the token named ``name`` (``cli`` itself as is)."""
        if name == "cli":
            return name
        token = next((t for t in await self.list() if t.name == name), None)
        if token is None:
            raise ValueError(f"there is no token named {name!r}")
        return f"token:{token.id}"

    async def revoke(self, name: str) -> bool:
        return await self.storage.write(lambda w: (w.revoke_token(name, utc_now()), None))

    # ---- verification (the server) ----------------------------------------------------------
    async def required(self) -> bool:
        """Whether calls need a token: one is configured, or one was ever stored."""
        if self.env_token:
            return True
        found = self._any.get("any")
        if found is None:
            found = await self.storage.read(tokens_ever) > 0
            self._any["any"] = found
        return found

    async def caller(self, authorization: str) -> Caller:
        """The caller an ``Authorization`` header names; Unauthorized when a token is needed and
        this is none, a wrong, an expired or a revoked one."""
        if not await self.required():
            return NOBODY_REQUIRED
        scheme, _, given = authorization.partition(" ")
        given = given.strip()
        if scheme.lower() != "bearer" or not given:
            raise errors.Unauthorized("send an API token as 'Authorization: Bearer <token>'")
        if self.env_token and hmac.compare_digest(given.encode(), self.env_token.encode()):
            return Caller(ENV_TOKEN_NAME, "admin")
        key = digest(given)
        if key in self._verified:
            token = self._verified[key]
        else:
            token = await self.storage.read(lambda r: r.token(key))
            self._verified[key] = token
        if token is None or not is_active(token, utc_now()):
            raise errors.Unauthorized("this API token is not valid (wrong, expired or revoked)")
        await self._note_use(token.id)
        return Caller(token.name, token.scope, token.id, token.visibility)

    async def _note_use(self, token_id: int) -> None:
        with self._lock:
            if token_id in self._used:
                return
            self._used[token_id] = True
        await self.storage.write(lambda w: (w.token_used(token_id, utc_now()), None))
