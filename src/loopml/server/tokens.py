"""API tokens: create (the secret is shown once), list, revoke, and verify with a short cache.

A token reads ``lml_<id>_<secret>``: ``id`` is 12 public hex digits that find the token's row,
``secret`` is :func:`secrets.token_urlsafe` of 32 bytes. The database keeps only the SHA-256
of the whole token. A fast hash is enough here (and keeps verification at a microsecond): slow
hashes such as scrypt or bcrypt protect *low-entropy* passwords against guessing, but a
256-bit random secret cannot be guessed, so a stolen table of hashes gives nothing back to an
attacker either way. The stored hash is compared in constant time (:func:`hmac.compare_digest`).

:class:`TokenVerifier` answers "who holds this token?" for the server. It caches each token's
row for ``ttl`` seconds (5 s by default) so a request usually costs no database query; the
database stays the truth, so a revocation made anywhere (the CLI, another server process)
takes effect everywhere within ``ttl``, and at once in the process that revoked it.
``last_used_at`` is written at most once a minute per token (not once per request).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from loopml.durations import parse_duration
from loopml.errors import InvalidArgument, NotFound, PermissionDenied
from loopml.server.roles import Role, check_role
from loopml.server.token_tables import api_tokens

if TYPE_CHECKING:
    from loopml.store import MetadataStore

__all__ = ["CACHE_TTL_S", "TOUCH_EVERY_S", "InvalidToken", "NewToken", "Principal", "TokenInfo",
           "TokenVerifier", "create_token", "get_token", "hash_token", "list_tokens",
           "revoke_token"]

#: How long a verified token's row is trusted before the database is asked again.
CACHE_TTL_S = 5.0
#: ``last_used_at`` is written at most this often per token.
TOUCH_EVERY_S = 60.0

_PREFIX = "lml_"
_TOKEN = re.compile(r"^lml_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_CREATE_HINT = "create one with 'loopml tokens create NAME --role ROLE'"


class InvalidToken(PermissionDenied):
    """A token is missing, malformed, unknown, revoked or expired (401, not 403)."""

    http_status = 401
    error_code = "UNAUTHENTICATED"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for: the token's id and name and the role it grants.

    ``token_id`` is None when the server runs without auth (then ``name`` is empty and the
    domain records its own default user)."""

    token_id: str | None
    name: str
    role: Role


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as listed: everything but its secret. Times are ms since the epoch (UTC)."""

    id: str
    name: str
    role: Role
    created_by: str
    created_at: int
    expires_at: int | None
    last_used_at: int | None
    revoked_at: int | None
    revoked_by: str

    def status(self, now_ms: int | None = None) -> str:
        """``active``, ``expired`` or ``revoked``."""
        if self.revoked_at is not None:
            return "revoked"
        now = _now_ms() if now_ms is None else now_ms
        return "expired" if self.expires_at is not None and self.expires_at <= now else "active"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status()}


@dataclass(frozen=True, slots=True)
class NewToken:
    """A token just created: ``secret`` is the whole token, shown this once and never again."""

    info: TokenInfo
    secret: str


def _now_ms() -> int:
    return int(time.time() * 1000)


def hash_token(token: str) -> str:
    """The hex SHA-256 stored for ``token``."""
    return hashlib.sha256(token.encode()).hexdigest()


def _info(row: Any) -> TokenInfo:
    return TokenInfo(id=row.id, name=row.name, role=row.role, created_by=row.created_by,
                     created_at=row.created_at, expires_at=row.expires_at,
                     last_used_at=row.last_used_at, revoked_at=row.revoked_at,
                     revoked_by=row.revoked_by)


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 256 \
            or any(ch < " " for ch in name):
        raise InvalidArgument(f"token name {name!r} is not allowed; give a short name of "
                              "printable characters (up to 256) saying who or what uses it, "
                              "e.g. 'ci' or 'alice-laptop'")
    return name.strip()


def create_token(meta: MetadataStore, name: str, *, role: str, expires: object = None,
                 created_by: str = "") -> NewToken:
    """A new token for ``name`` granting ``role``; ``expires`` is a duration (``90d``,
    seconds, a timedelta) after which it stops working, or None for never."""
    checked_name = _check_name(name)
    checked_role = check_role(role)
    now = _now_ms()
    expires_at = None
    if expires is not None:
        expires_at = now + int(parse_duration(expires, what="token expiry") * 1000)
    token_id = secrets.token_hex(6)
    secret = f"{_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    info = TokenInfo(id=token_id, name=checked_name, role=checked_role,
                     created_by=created_by[:256], created_at=now, expires_at=expires_at,
                     last_used_at=None, revoked_at=None, revoked_by="")
    with meta.write() as conn:
        conn.execute(api_tokens.insert().values(**asdict(info), hash=hash_token(secret)))
    return NewToken(info=info, secret=secret)


def list_tokens(meta: MetadataStore, *, include_revoked: bool = True) -> list[TokenInfo]:
    """Every token, newest first (revoked ones too unless ``include_revoked`` is False)."""
    query = sa.select(api_tokens).order_by(api_tokens.c.created_at.desc(), api_tokens.c.id)
    if not include_revoked:
        query = query.where(api_tokens.c.revoked_at.is_(None))
    with meta.read() as conn:
        return [_info(row) for row in conn.execute(query)]


def get_token(meta: MetadataStore, token_id: str) -> TokenInfo:
    with meta.read() as conn:
        row = conn.execute(sa.select(api_tokens).where(api_tokens.c.id == token_id)).first()
    if row is None:
        raise NotFound(f"no token with id {token_id!r}; 'loopml tokens list' shows the ids")
    return _info(row)


def revoke_token(meta: MetadataStore, token_id: str, *, revoked_by: str = "") -> TokenInfo:
    """Revoke a token for good (revoking it again changes nothing)."""
    with meta.write() as conn:
        conn.execute(api_tokens.update()
                     .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
                     .values(revoked_at=_now_ms(), revoked_by=revoked_by[:256]))
    return get_token(meta, token_id)


@dataclass(frozen=True, slots=True)
class _Entry:
    fetched: float  # monotonic seconds
    hash: str
    info: TokenInfo


class TokenVerifier:
    """Tokens → principals for one server process, with rows cached for ``ttl`` seconds.

    :meth:`verify` may query (and, once a minute per token, update) the database;
    :meth:`verify_cached` never does, and returns None when it would have to. ``meta`` may
    be a function returning the store, so that building a verifier opens nothing."""

    def __init__(self, meta: MetadataStore | Callable[[], MetadataStore], *,
                 ttl: float = CACHE_TTL_S, touch_every: float = TOUCH_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._meta = meta
        self.ttl = ttl
        self.touch_every_ms = int(touch_every * 1000)
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    @property
    def meta(self) -> MetadataStore:
        """The store (opened on first use when given as a function)."""
        return self._meta() if callable(self._meta) else self._meta

    def verify_cached(self, token: str) -> Principal | None:
        """The principal from the cache alone; None when the database must be asked.
        InvalidToken when the cache already tells the token is no good."""
        token_id = _token_id(token)
        entry = self._entries.get(token_id)
        if entry is None or self._clock() - entry.fetched > self.ttl:
            return None
        info = _judge(token, entry)
        if self._touch_due(info, _now_ms()):
            return None
        return _principal(info)

    def verify(self, token: str) -> Principal:
        """The principal holding ``token``; InvalidToken when it is not a live token."""
        token_id = _token_id(token)
        entry = self._entries.get(token_id)
        if entry is None or self._clock() - entry.fetched > self.ttl:
            entry = self._fetch(token_id)
        info = _judge(token, entry)
        now = _now_ms()
        if self._touch_due(info, now):
            self._touch(entry, now)
        return _principal(info)

    def cached_info(self, token_id: str) -> TokenInfo | None:
        """The cached row of a token (None when it is not cached)."""
        entry = self._entries.get(token_id)
        return None if entry is None else entry.info

    def forget(self, token_id: str) -> None:
        """Drop a token from the cache (after revoking it in this process)."""
        with self._lock:
            self._entries.pop(token_id, None)

    def _fetch(self, token_id: str) -> _Entry:
        with self.meta.read() as conn:
            row = conn.execute(sa.select(api_tokens)
                               .where(api_tokens.c.id == token_id)).first()
        if row is None:
            raise _unknown()
        entry = _Entry(fetched=self._clock(), hash=row.hash, info=_info(row))
        with self._lock:
            self._entries[token_id] = entry
        return entry

    def _touch_due(self, info: TokenInfo, now: int) -> bool:
        return info.last_used_at is None or now - info.last_used_at >= self.touch_every_ms

    def _touch(self, entry: _Entry, now: int) -> None:
        """Record the use; the condition keeps several processes to about one write a minute."""
        table = api_tokens
        with self.meta.write() as conn:
            conn.execute(table.update()
                         .where(table.c.id == entry.info.id,
                                sa.or_(table.c.last_used_at.is_(None),
                                       table.c.last_used_at <= now - self.touch_every_ms))
                         .values(last_used_at=now))
        touched = _Entry(fetched=entry.fetched, hash=entry.hash,
                         info=_replace_last_used(entry.info, now))
        with self._lock:
            self._entries[entry.info.id] = touched


def _replace_last_used(info: TokenInfo, now: int) -> TokenInfo:
    return dataclasses.replace(info, last_used_at=now)


def _token_id(token: str) -> str:
    match = _TOKEN.match(token)
    if match is None:
        raise InvalidToken("the token is malformed: a loopml token reads 'lml_' followed by "
                           f"12 hex digits, '_' and 43 more characters; {_CREATE_HINT}")
    return match.group(1)


def _unknown() -> InvalidToken:
    return InvalidToken(f"the token is not known to this server; {_CREATE_HINT}")


def _judge(token: str, entry: _Entry) -> TokenInfo:
    if not hmac.compare_digest(hash_token(token), entry.hash):
        raise _unknown()
    info = entry.info
    if info.revoked_at is not None:
        raise InvalidToken(f"the token {info.id} ({info.name!r}) was revoked; {_CREATE_HINT}")
    if info.expires_at is not None and info.expires_at <= _now_ms():
        when = datetime.fromtimestamp(info.expires_at / 1000, tz=UTC)
        raise InvalidToken(f"the token {info.id} ({info.name!r}) expired at "
                           f"{when:%Y-%m-%d %H:%M:%S} UTC; {_CREATE_HINT}")
    return info


def _principal(info: TokenInfo) -> Principal:
    return Principal(token_id=info.id, name=info.name, role=info.role)
