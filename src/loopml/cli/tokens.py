"""``loopml tokens``: create, list and revoke the server's API tokens.

These commands work on the metadata store directly (run them where the store is reachable,
e.g. on the server's machine): that is how the first admin token is made. Afterwards an
admin can also manage tokens over HTTP (``/api/v1/tokens``).
"""

from __future__ import annotations

import click

from loopml.cli.options import json_option, open_client
from loopml.cli.output import format_time, print_json, print_table

__all__ = ["tokens"]


@click.group("tokens")
def tokens() -> None:
    """API tokens for `loopml server`: viewer (read), editor (write), admin (tokens too)."""


@tokens.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "editor", "admin"]), required=True,
              help="viewer reads; editor also writes; admin also manages tokens.")
@click.option("--expires", default=None, metavar="DURATION",
              help="Stop working after this long, e.g. 90d, 12h (default: never).")
@json_option
def create(name: str, role: str, expires: str | None, as_json: bool) -> None:
    """Create a token for NAME (who or what uses it); its secret is shown once."""
    from loopml.identity import current_user
    from loopml.server.tokens import create_token

    made = create_token(open_client().meta, name, role=role, expires=expires,
                        created_by=current_user())
    if as_json:
        print_json({"token": made.info.to_dict(), "secret": made.secret})
        return
    info = made.info
    expiry = format_time(info.expires_at) + " UTC" if info.expires_at else "never"
    click.echo(f"created token {info.id} ({info.name!r}, role {info.role}, expires {expiry})")
    click.echo("its secret, shown this once (store it now; only its hash is kept):", err=True)
    click.echo(made.secret)


@tokens.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include revoked tokens.")
@json_option
def list_command(show_all: bool, as_json: bool) -> None:
    """Tokens, newest first (never their secrets)."""
    from loopml.server.tokens import list_tokens

    found = list_tokens(open_client().meta, include_revoked=show_all)
    if as_json:
        print_json([token.to_dict() for token in found])
        return
    print_table(("id", "name", "role", "status", "created", "by", "expires", "last used"),
                [(t.id, t.name, t.role, t.status(), format_time(t.created_at), t.created_by,
                  format_time(t.expires_at) if t.expires_at else "never",
                  format_time(t.last_used_at)) for t in found],
                title=f"{len(found)} token(s)")


@tokens.command("revoke")
@click.argument("token_id", metavar="ID")
@json_option
def revoke(token_id: str, as_json: bool) -> None:
    """Revoke token ID for good; servers refuse it within seconds."""
    from loopml.identity import current_user
    from loopml.server.tokens import CACHE_TTL_S, revoke_token

    info = revoke_token(open_client().meta, token_id, revoked_by=current_user())
    if as_json:
        print_json(info.to_dict())
        return
    click.echo(f"revoked token {info.id} ({info.name!r}); running servers refuse it within "
               f"{CACHE_TTL_S:g} s")
