"""API tokens: stored as hashes, verified in constant time, cached for a few seconds,
revoked and expired for good; ``loopml tokens`` over the embedded store."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from loopml.cli.main import cli
from loopml.errors import InvalidArgument, NotFound
from loopml.server import tokens as tokens_module
from loopml.server.token_tables import api_tokens
from loopml.server.tokens import (
    InvalidToken,
    TokenVerifier,
    create_token,
    get_token,
    hash_token,
    list_tokens,
    revoke_token,
)
from loopml.store import MetadataStore


@pytest.fixture
def meta(tmp_path: Path) -> Iterator[MetadataStore]:
    store = MetadataStore(f"sqlite:///{tmp_path / 'meta.db'}")
    yield store
    store.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _rows(meta: MetadataStore) -> list[dict[str, Any]]:
    with meta.read() as conn:
        return [dict(row._mapping) for row in conn.execute(sa.select(api_tokens))]


def test_the_secret_is_shown_once_and_only_its_hash_is_stored(meta: MetadataStore) -> None:
    made = create_token(meta, "ci", role="editor", created_by="alice")
    assert made.secret.startswith(f"lml_{made.info.id}_")
    assert len(made.secret) == 4 + 12 + 1 + 43  # token_urlsafe(32): 43 characters
    rows = _rows(meta)
    assert len(rows) == 1
    stored = " ".join(str(value) for value in rows[0].values())
    secret_part = made.secret[len(f"lml_{made.info.id}_"):]
    assert made.secret not in stored and secret_part not in stored
    assert rows[0]["hash"] == hashlib.sha256(made.secret.encode()).hexdigest()
    assert rows[0]["hash"] == hash_token(made.secret)
    assert (rows[0]["name"], rows[0]["role"], rows[0]["created_by"]) == ("ci", "editor", "alice")
    listed = list_tokens(meta)
    assert [t.id for t in listed] == [made.info.id]
    assert "hash" not in listed[0].to_dict() and made.secret not in str(listed[0].to_dict())
    assert listed[0].to_dict()["status"] == "active"


def test_two_tokens_never_share_a_secret(meta: MetadataStore) -> None:
    first = create_token(meta, "a", role="viewer")
    second = create_token(meta, "a", role="viewer")
    assert first.info.id != second.info.id and first.secret != second.secret


def test_verify_answers_the_principal_and_rejects_anything_else(meta: MetadataStore) -> None:
    made = create_token(meta, "alice", role="admin")
    verifier = TokenVerifier(meta)
    principal = verifier.verify(made.secret)
    assert (principal.token_id, principal.name, principal.role) == (made.info.id, "alice",
                                                                    "admin")
    forged = made.secret[:-4] + ("AAAA" if not made.secret.endswith("AAAA") else "BBBB")
    for bad in (forged, "lml_000000000000_" + "x" * 43, "not-a-token", "", made.secret + "x"):
        with pytest.raises(InvalidToken) as caught:
            verifier.verify(bad)
        assert caught.value.http_status == 401
        assert "loopml tokens create" in str(caught.value)


def test_the_comparison_is_constant_time(meta: MetadataStore,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    made = create_token(meta, "alice", role="viewer")
    calls: list[tuple[str, str]] = []
    real = tokens_module.hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(tokens_module.hmac, "compare_digest", spy)
    TokenVerifier(meta).verify(made.secret)
    assert calls == [(hash_token(made.secret), hash_token(made.secret))]


def test_revocation_takes_effect_within_the_cache_ttl(meta: MetadataStore) -> None:
    made = create_token(meta, "bob", role="editor")
    clock = Clock()
    verifier = TokenVerifier(meta, ttl=5.0, clock=clock)
    verifier.verify(made.secret)
    assert verifier.verify_cached(made.secret) is not None
    revoked = revoke_token(meta, made.info.id, revoked_by="admin")  # e.g. another process
    assert revoked.status() == "revoked" and revoked.revoked_by == "admin"
    clock.now += 4.0
    assert verifier.verify(made.secret).name == "bob"  # still cached: at most ttl seconds
    clock.now += 1.5
    assert verifier.verify_cached(made.secret) is None  # stale: the database is asked
    with pytest.raises(InvalidToken, match="revoked"):
        verifier.verify(made.secret)
    with pytest.raises(InvalidToken, match="revoked"):  # the cache now knows too
        verifier.verify_cached(made.secret)


def test_forget_makes_a_revocation_immediate_in_this_process(meta: MetadataStore) -> None:
    made = create_token(meta, "bob", role="editor")
    verifier = TokenVerifier(meta, clock=Clock())
    verifier.verify(made.secret)
    revoke_token(meta, made.info.id)
    verifier.forget(made.info.id)
    with pytest.raises(InvalidToken, match="revoked"):
        verifier.verify(made.secret)


def test_an_expired_token_is_refused(meta: MetadataStore) -> None:
    made = create_token(meta, "temp", role="viewer", expires="1d")
    assert made.info.expires_at is not None
    assert 86_390_000 < made.info.expires_at - made.info.created_at <= 86_400_000
    verifier = TokenVerifier(meta)
    verifier.verify(made.secret)
    with meta.write() as conn:
        conn.execute(api_tokens.update().values(expires_at=made.info.created_at - 1))
    verifier.forget(made.info.id)
    with pytest.raises(InvalidToken, match="expired at"):
        verifier.verify(made.secret)
    assert get_token(meta, made.info.id).status() == "expired"


def test_last_used_is_written_at_most_once_a_minute(meta: MetadataStore,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    made = create_token(meta, "ci", role="viewer")
    writes = 0
    real_write = meta.write

    @contextlib.contextmanager
    def counting_write() -> Iterator[sa.Connection]:
        nonlocal writes
        writes += 1
        with real_write() as conn:
            yield conn

    monkeypatch.setattr(meta, "write", counting_write)
    clock = Clock()
    verifier = TokenVerifier(meta, clock=clock)
    for _ in range(20):
        verifier.verify(made.secret)
        clock.now += 1.0  # past the cache ttl now and then: reads, but no writes
    assert writes == 1
    used = get_token(meta, made.info.id).last_used_at
    assert used is not None and used >= made.info.created_at
    assert verifier.verify_cached(made.secret) is not None
    with real_write() as conn:  # a minute later (as the database sees it)
        conn.execute(api_tokens.update().values(last_used_at=used - 61_000))
    clock.now += 10.0
    assert verifier.verify_cached(made.secret) is None
    verifier.verify(made.secret)
    assert writes == 2
    assert (get_token(meta, made.info.id).last_used_at or 0) >= used


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "ci", "role": "owner"}, "unknown role 'owner'"),
    ({"name": "", "role": "viewer"}, "token name ''"),
    ({"name": "a\nb", "role": "viewer"}, "printable"),
    ({"name": "ci", "role": "viewer", "expires": "soon"}, "token expiry: 'soon'"),
    ({"name": "ci", "role": "viewer", "expires": "-1d"}, "token expiry"),
])
def test_bad_arguments_are_refused_and_store_nothing(meta: MetadataStore,
                                                     kwargs: dict[str, Any],
                                                     message: str) -> None:
    name = kwargs.pop("name")
    with pytest.raises(InvalidArgument, match=message):
        create_token(meta, name, **kwargs)
    assert _rows(meta) == []


def test_list_and_revoke(meta: MetadataStore) -> None:
    old = create_token(meta, "old", role="viewer")
    new = create_token(meta, "new", role="admin")
    revoke_token(meta, old.info.id)
    first = get_token(meta, old.info.id).revoked_at
    assert revoke_token(meta, old.info.id).revoked_at == first  # again: no change
    assert {t.id for t in list_tokens(meta)} == {old.info.id, new.info.id}
    assert [t.id for t in list_tokens(meta, include_revoked=False)] == [new.info.id]
    with pytest.raises(NotFound, match="loopml tokens list"):
        revoke_token(meta, "nope")


def test_cli_creates_lists_and_revokes_tokens() -> None:
    runner = CliRunner()
    made = runner.invoke(cli, ["tokens", "create", "first-admin", "--role", "admin",
                               "--expires", "90d", "--json"])
    assert made.exit_code == 0, made.output
    answer = orjson.loads(made.stdout)
    secret, token_id = answer["secret"], answer["token"]["id"]
    assert secret.startswith(f"lml_{token_id}_") and answer["token"]["role"] == "admin"

    shown = runner.invoke(cli, ["tokens", "create", "viewer", "--role", "viewer"])
    assert shown.exit_code == 0 and "shown this once" in shown.stderr
    viewer_secret = shown.stdout.strip().splitlines()[-1]
    assert viewer_secret.startswith("lml_")

    listed = runner.invoke(cli, ["tokens", "list", "--json"])
    rows = orjson.loads(listed.stdout)
    assert {r["name"] for r in rows} == {"first-admin", "viewer"}
    assert secret not in listed.stdout and viewer_secret not in listed.stdout

    revoked = runner.invoke(cli, ["tokens", "revoke", token_id])
    assert revoked.exit_code == 0 and "revoked token" in revoked.stdout
    table = runner.invoke(cli, ["tokens", "list", "--all"])
    assert "revoked" in table.stdout and "first-admin" in table.stdout
    assert "first-admin" not in runner.invoke(cli, ["tokens", "list"]).stdout

    bad = runner.invoke(cli, ["tokens", "create", "x", "--role", "root"])
    assert bad.exit_code == 2 and "root" in bad.stderr
