"""``loopml models``: registered models, versions, aliases (audited), cards, conversion, bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from loopml.cli.options import json_option, open_client
from loopml.cli.output import format_time, format_value, print_json, print_table

__all__ = ["models"]

def _version_dict(v: Any) -> dict[str, Any]:
    return {"model": v.model, "version": v.version, "uri": v.uri, "status": v.status,
            "flavor": v.flavor, "aliases": list(v.aliases), "run_id": v.run_id,
            "metrics": v.metrics, "params": v.params, "datasets": v.datasets,
            "signature": v.signature, "description": v.description,
            "created_at": format_time(v.created_at), "created_by": v.created_by}


def _event_dict(e: Any) -> dict[str, Any]:
    return {"model": e.model, "alias": e.alias, "from_version": e.from_version,
            "to_version": e.to_version, "actor": e.actor, "reason": e.reason,
            "at": format_time(e.created_at)}


def _moved(e: Any) -> str:
    return (f"{e.model}@{e.alias}: {e.from_version or '-'} -> {e.to_version or '-'}"
            + (f" ({e.reason})" if e.reason else ""))


@click.group()
def models() -> None:
    """Model registry: versions, aliases, history, cards, conversion, bundles."""


@models.command("list")
@json_option
def models_list(as_json: bool) -> None:
    """List registered models with their aliases."""
    found = open_client().list_registered_models()
    if as_json:
        print_json([{"name": m.name, "latest_version": m.latest_version, "aliases": m.aliases,
                     "description": m.description} for m in found])
        return
    print_table(["model", "latest", "aliases", "description"],
                [[m.name, m.latest_version, ", ".join(f"{a}→{v}" for a, v in m.aliases.items()),
                  m.description] for m in found], title=f"{len(found)} model(s)")


@models.command("versions")
@click.argument("name")
@json_option
def models_versions(name: str, as_json: bool) -> None:
    """List the versions of NAME with their metrics."""
    found = open_client().list_model_versions(name)
    if as_json:
        print_json([_version_dict(v) for v in found])
        return
    keys = sorted({k for v in found for k in v.metrics if "/" not in k})[:6]
    print_table(["version", "status", "aliases", "flavor", "created (UTC)", *keys],
                [[v.version, v.status, ", ".join(v.aliases), v.flavor,
                  format_time(v.created_at), *(v.metrics.get(k) for k in keys)] for v in found],
                title=f"{name}: {len(found)} version(s)")


@models.command("show")
@click.argument("ref")
@json_option
def models_show(ref: str, as_json: bool) -> None:
    """Show a version: REF is NAME/3, NAME@ALIAS or NAME (latest active)."""
    version = open_client().get_model_version(ref)
    if as_json:
        print_json(_version_dict(version))
        return
    print_table(["field", "value"], [
        ["version", version.ref], ["status", version.status], ["flavor", version.flavor],
        ["aliases", ", ".join(version.aliases) or None], ["run", version.run_id],
        ["datasets", ", ".join(version.datasets) or None],
        ["created (UTC)", format_time(version.created_at)], ["by", version.created_by],
        ["description", version.description or None]], title=f"model {version.ref}")
    if version.metrics:
        print_table(["metric", "value"], sorted(version.metrics.items()), title="metrics")
    if version.params:
        print_table(["param", "value"], sorted(version.params.items()), title="params")


@models.command("set-alias")
@click.argument("name")
@click.argument("alias")
@click.argument("version", type=int)
@click.option("--reason", default="", help="Why (kept in the audit log).")
def models_set_alias(name: str, alias: str, version: int, reason: str) -> None:
    """Point ALIAS of NAME at VERSION (audited)."""
    click.echo(_moved(open_client().set_model_alias(name, alias, version, reason=reason)))


@models.command("delete-alias")
@click.argument("name")
@click.argument("alias")
@click.option("--reason", default="", help="Why (kept in the audit log).")
def models_delete_alias(name: str, alias: str, reason: str) -> None:
    """Remove ALIAS from NAME (audited)."""
    click.echo(_moved(open_client().delete_model_alias(name, alias, reason=reason)))


@models.command("rollback")
@click.argument("name")
@click.option("--alias", default="production", show_default=True)
@click.option("--reason", default="", help="Why (kept in the audit log).")
def models_rollback(name: str, alias: str, reason: str) -> None:
    """Move ALIAS back to the version it pointed to before (from the audit log)."""
    click.echo(_moved(open_client().rollback_model_alias(name, alias, reason=reason)))


@models.command("history")
@click.argument("name")
@click.option("--alias", default=None, help="Only this alias.")
@json_option
def models_history(name: str, alias: str | None, as_json: bool) -> None:
    """The audit log of NAME's aliases: who moved what, when, from which version, why."""
    events = open_client().model_alias_history(name, alias)
    if as_json:
        print_json([_event_dict(e) for e in events])
        return
    print_table(["when (UTC)", "alias", "from", "to", "who", "why"],
                [[format_time(e.created_at), e.alias, e.from_version, e.to_version, e.actor,
                  e.reason] for e in events], title=f"alias history of {name}")


@models.command("best")
@click.argument("name")
@click.option("--metric", required=True)
@click.option("--mode", type=click.Choice(["max", "min"]), default="max", show_default=True)
@click.option("--where", default=None, help="e.g. \"params.model = 'rf'\"")
def models_best(name: str, metric: str, mode: str, where: str | None) -> None:
    """The active version with the best METRIC."""
    best = open_client().best_model_version(name, metric=metric, mode=mode, where=where)
    if best is None:
        click.echo(f"no active version of {name} has the metric {metric!r}")
        return
    click.echo(f"{best.ref} ({metric}={format_value(best.metrics[metric])})")


@models.command("card")
@click.argument("ref")
@click.option("--html", "html_path", type=click.Path(path_type=Path),
              help="Also write the card as HTML to this file.")
def models_card(ref: str, html_path: Path | None) -> None:
    """Print the model card of REF (Markdown); --html writes the HTML card too."""
    client = open_client()
    click.echo(client.model_card(ref))
    if html_path is not None:
        html_path.write_text(client.model_card(ref, output="html"))
        click.echo(f"HTML card written to {html_path}", err=True)


@models.command("register")
@click.argument("source")
@click.option("--name", "-n", required=True)
@click.option("--description", default="")
def models_register(source: str, name: str, description: str) -> None:
    """Register SOURCE (runs:/RUN_ID/PATH or a package directory) as a new version."""
    version = open_client().register_model(source, name, description=description)
    click.echo(f"registered {version.ref} ({version.flavor})")


@models.command("archive")
@click.argument("ref")
def models_archive(ref: str) -> None:
    """Archive a version (it can no longer receive aliases)."""
    version = open_client().set_model_version_status(ref, "archived")
    click.echo(f"{version.ref} archived")


@models.command("restore")
@click.argument("ref")
def models_restore(ref: str) -> None:
    """Make an archived version active again."""
    version = open_client().set_model_version_status(ref, "active")
    click.echo(f"{version.ref} active")


@models.command("delete")
@click.argument("ref")
def models_delete(ref: str) -> None:
    """Delete a version that carries no alias."""
    client = open_client()
    version = client.get_model_version(ref)
    client.delete_model_version(version.ref)
    click.echo(f"{version.ref} deleted")


@models.command("convert")
@click.argument("ref")
@click.option("--to", "target", default="onnx", show_default=True)
@click.option("--tolerance", default=1e-4, show_default=True, type=float)
def models_convert(ref: str, target: str, tolerance: float) -> None:
    """Convert REF (e.g. to ONNX); refused when predictions differ beyond --tolerance."""
    version = open_client().convert_model(ref, to=target, tolerance=tolerance)
    click.echo(f"registered {version.ref} ({version.flavor}), converted from {ref}")


@models.command("build")
@click.argument("ref")
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--docker-build", "docker_tag", default=None,
              help="Also run 'docker build -t TAG' where an engine exists.")
def models_build(ref: str, out: Path, docker_tag: str | None) -> None:
    """Write a self-contained serving bundle for REF (package, requirements, Dockerfile)."""
    from loopml.models import docker_build

    bundle = open_client().build_model_bundle(ref, out)
    click.echo(f"bundle written to {bundle}")
    if docker_tag:
        docker_build(bundle, docker_tag)
        click.echo(f"image {docker_tag} built")
