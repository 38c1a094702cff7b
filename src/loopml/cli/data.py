"""``loopml data``: add, append, list, show, diff, get, tag, lineage and contracts of datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from loopml.cli.options import json_option, open_client
from loopml.cli.output import format_time, format_value, print_json, print_table

__all__ = ["data"]

def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def _version_dict(v: Any) -> dict[str, Any]:
    return {"ref": v.ref, "dataset": v.dataset, "version": v.version, "kind": v.kind.value,
            "files": v.files, "bytes": v.bytes, "rows": v.rows, "new_files": v.new_files,
            "new_rows": v.new_rows, "parent_version": v.parent_version, "tree": v.tree,
            "message": v.message, "created_at": format_time(v.created_at),
            "created_by": v.created_by, "tags": list(v.tags), "schema": v.schema,
            "validation": v.validation, "unchanged": v.unchanged}


def _report_added(version: Any, as_json: bool) -> None:
    if as_json:
        print_json(_version_dict(version))
        return
    if version.unchanged:
        click.echo(f"{version.dataset}: unchanged, same content as {version.ref} "
                   "(no new version)")
        return
    rows = "" if version.rows is None else f", {version.rows:,} rows ({version.new_rows:,} new)"
    click.echo(f"added {version.ref}: {version.files:,} files, {_size(version.bytes)} "
               f"({version.new_files:,} new files){rows}")
    validation = version.validation or {}
    contract = validation.get("contract")
    if contract and not contract.get("ok", True):
        click.echo("warning: the version violates the dataset's contract:", err=True)
        for violation in contract.get("violations", []):
            click.echo(f"  {violation.get('column')}: {violation.get('rule')} "
                       f"({violation.get('count')} rows, e.g. {violation.get('examples')})",
                       err=True)
    for shift in validation.get("shifts", []):
        click.echo(f"note: {shift.get('message')}", err=True)


@click.group()
def data() -> None:
    """Datasets: versioned files, directories and tables."""


@data.command("add")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--name", "-n", required=True, help="Dataset name.")
@click.option("--message", "-m", default="", help="What this version is.")
@click.option("--strict", is_flag=True, help="Reject the version if it violates the contract.")
@json_option
def data_add(path: Path, name: str, message: str, strict: bool, as_json: bool) -> None:
    """Add PATH (a file, a directory, a CSV/Parquet table) as the next version of NAME."""
    from loopml.client.base import ClientBase
    from loopml.datasets.ingest import IngestOptions, add_to
    from loopml.datasets.quick_add import QuickCatalog
    from loopml.datasets.refs import check_dataset_name

    stores = ClientBase()
    catalog = QuickCatalog.open(stores.settings, check_dataset_name(name))
    if catalog is None:  # not the embedded store, or a fresh one: the client's path
        version = open_client().add_dataset(path, name, message=message, strict=strict)
    else:
        options = IngestOptions(message=message, strict=strict,
                                progress=stores.settings.progress)
        version = add_to(catalog, stores.blobs, stores.stat_cache, name=name, path=path,
                         options=options)
    _report_added(version, as_json)


@data.command("append")
@click.argument("name")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--message", "-m", default="", help="What this version adds.")
@click.option("--strict", is_flag=True, help="Reject the rows if they violate the contract.")
@json_option
def data_append(name: str, path: Path, message: str, strict: bool, as_json: bool) -> None:
    """A new version of NAME: the latest one plus the files or rows at PATH."""
    _report_added(open_client().append_dataset(name, path, message=message, strict=strict),
                  as_json)


@data.command("status")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--name", "-n", required=True, help="Dataset name.")
@json_option
def data_status(path: Path, name: str, as_json: bool) -> None:
    """Compare PATH with the latest version of NAME (unchanged files are not re-hashed)."""
    from loopml.blobs.tree import build_tree, diff_trees
    from loopml.client.base import ClientBase
    from loopml.datasets.quick_lookup import latest_version_quickly

    stores = ClientBase()
    found = latest_version_quickly(stores.settings, name)
    client = None
    if found is None:  # not the embedded store, or a case the client words better
        client = open_client()
        latest = client.get_dataset_version(name)
        found = (latest.version, latest.tree)
    version, latest_tree = found
    # With a server, the latest tree is read through the remote client's local cache.
    blobs = client.blob_cache if client is not None and stores.settings.is_remote \
        else stores.blobs
    tree = build_tree(blobs, path, base=latest_tree, stat_cache=stores.stat_cache,
                      record=False)  # the directory's index keeps naming the version
    changes = diff_trees(blobs, latest_tree, tree.digest)
    result = {"dataset": f"{name}@{version}", "up_to_date": tree.digest == latest_tree,
              "added": list(changes.added), "removed": list(changes.removed),
              "modified": list(changes.modified)}
    if as_json:
        print_json(result)
    elif result["up_to_date"]:
        click.echo(f"{path} is up to date with {name}@{version}")
    else:
        click.echo(f"{path} differs from {name}@{version}: {len(changes.added)} added, "
                   f"{len(changes.removed)} removed, {len(changes.modified)} modified")


@data.command("list")
@json_option
def data_list(as_json: bool) -> None:
    """List datasets with their latest version."""
    found = open_client().list_datasets()
    if as_json:
        print_json([{"name": d.name, "latest": None if v is None else _version_dict(v)}
                    for d, v in found])
        return
    print_table(["dataset", "latest", "kind", "files", "size", "rows", "updated (UTC)"],
                [[d.name, None if v is None else v.version, v and v.kind.value,
                  v and v.files, v and _size(v.bytes), v and v.rows,
                  v and format_time(v.created_at)] for d, v in found],
                title=f"{len(found)} dataset(s)")


@data.command("versions")
@click.argument("name")
@json_option
def data_versions(name: str, as_json: bool) -> None:
    """List the versions of NAME."""
    found = open_client().list_dataset_versions(name)
    if as_json:
        print_json([_version_dict(v) for v in found])
        return
    print_table(["version", "tags", "files", "size", "rows", "new rows", "created (UTC)",
                 "message"],
                [[v.version, ", ".join(v.tags), v.files, _size(v.bytes), v.rows, v.new_rows,
                  format_time(v.created_at), v.message] for v in found],
                title=f"{name}: {len(found)} version(s)")


@data.command("show")
@click.argument("ref")
@json_option
def data_show(ref: str, as_json: bool) -> None:
    """Show a version (REF is NAME, NAME@3, NAME@latest or NAME@TAG): files, schema, statistics."""
    client = open_client()
    version = client.get_dataset_version(ref)
    profile = client.dataset_profile(version.ref)
    summaries = {} if profile is None else {n: c.summary() for n, c in profile.columns.items()}
    if as_json:
        print_json({**_version_dict(version), "statistics": summaries})
        return
    info = [["version", version.ref], ["kind", version.kind.value], ["files", version.files],
            ["size", _size(version.bytes)], ["rows", version.rows],
            ["new since parent", f"{version.new_files} files"
             + ("" if version.new_rows is None else f", {version.new_rows} rows")],
            ["parent", version.parent_version], ["tags", ", ".join(version.tags) or None],
            ["message", version.message or None],
            ["created (UTC)", format_time(version.created_at)],
            ["tree", version.tree]]
    print_table(["field", "value"], info, title=f"dataset {version.ref}")
    if version.schema:
        rows = []
        for column in version.schema:
            s = summaries.get(column["name"], {})
            rows.append([column["name"], column["type"], s.get("nulls"), s.get("min"),
                         s.get("max"), s.get("mean"), s.get("std"), s.get("distinct"),
                         _top(s.get("top"))])
        print_table(["column", "type", "nulls", "min", "max", "mean", "std", "distinct",
                     "top categories"], rows, title="schema and statistics")


def _top(top: Any) -> str | None:
    if not top:
        return None
    pairs = top.items() if isinstance(top, dict) else top
    return ", ".join(f"{k} ({format_value(v)})" for k, v in list(pairs)[:3])


@data.command("diff")
@click.argument("old")
@click.argument("new")
@json_option
def data_diff(old: str, new: str, as_json: bool) -> None:
    """Compare two versions: files, rows, columns and statistics that moved."""
    result = open_client().diff_datasets(old, new)
    if as_json:
        print_json(result.to_dict())
        return
    click.echo(f"{result.old} -> {result.new}: {len(result.added)} file(s) added, "
               f"{len(result.removed)} removed, {len(result.modified)} modified")
    for label, paths in (("+", result.added), ("-", result.removed), ("M", result.modified)):
        for p in paths[:20]:
            click.echo(f"  {label} {p}")
        if len(paths) > 20:
            click.echo(f"  {label} … and {len(paths) - 20} more")
    if result.rows_delta is not None:
        click.echo(f"rows: {result.rows_old:,} -> {result.rows_new:,} ({result.rows_delta:+,})")
    for change in result.columns:
        click.echo(f"column {change}")
    for shift in result.shifts:
        click.echo(f"statistics: {shift['message']}")


@data.command("get")
@click.argument("ref")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--prefix", default="", help="Only this sub-directory of the version.")
def data_get(ref: str, dest: Path, prefix: str) -> None:
    """Materialise the files of REF into DEST (only differing files are written)."""
    from loopml.blobs.checkout import checkout
    from loopml.client.base import ClientBase
    from loopml.datasets.quick_lookup import version_quickly

    stores = ClientBase()
    found = version_quickly(stores.settings, ref)
    if found is None:  # a tag, another store, or an error the client words
        stats = open_client().get_dataset(ref, dest, prefix=prefix)
    else:
        stats = checkout(stores.blobs, found[2], dest, prefix=prefix,
                         stat_cache=stores.stat_cache, progress=stores.settings.progress)
    click.echo(f"{ref} -> {dest}: {stats.written} written, {stats.unchanged} unchanged")


def _transfer(ref: str, direction: str) -> Any:
    """Push or pull the objects of REF; the version is found without SQLAlchemy when it can."""
    from loopml.blobs.transfer import pull, push
    from loopml.client.base import ClientBase
    from loopml.datasets.quick_lookup import version_quickly

    stores = ClientBase()
    if stores.settings.is_remote:  # the server holds every version: the client says so
        client = open_client()
        return client.push_dataset(ref) if direction == "push" else client.pull_dataset(ref)
    found = version_quickly(stores.settings, ref)
    tree = open_client().get_dataset_version(ref).tree if found is None else found[2]
    move = push if direction == "push" else pull
    return move(stores.blobs, stores.remote_blobs, tree, progress=stores.settings.progress)


@data.command("push")
@click.argument("ref")
def data_push(ref: str) -> None:
    """Copy the version REF to the remote store (LOOPML_REMOTE_URL); only missing objects."""
    stats = _transfer(ref, "push")
    click.echo(f"{ref}: pushed {stats.objects} object(s), {_size(stats.bytes)} "
               f"({stats.skipped} already there)")


@data.command("pull")
@click.argument("ref")
def data_pull(ref: str) -> None:
    """Copy the version REF from the remote store into the local one; then 'data get' it."""
    stats = _transfer(ref, "pull")
    click.echo(f"{ref}: pulled {stats.objects} object(s), {_size(stats.bytes)} "
               f"({stats.skipped} already here)")


@data.command("tag")
@click.argument("ref")
@click.argument("tag")
def data_tag(ref: str, tag: str) -> None:
    """Point TAG at the version REF (moving it if it was elsewhere)."""
    version = open_client().tag_dataset(ref, tag)
    click.echo(f"{version.dataset}@{tag} -> version {version.version}")


@data.command("lineage")
@click.argument("ref")
@json_option
def data_lineage(ref: str, as_json: bool) -> None:
    """Runs that read or produced the version REF."""
    client = open_client()
    version = client.get_dataset_version(ref)
    links = client.dataset_lineage(version.ref)
    consumers = client.dataset_consumers(version.ref)
    if as_json:
        print_json({"version": version.ref, "runs": [
            {"run_id": r.id, "name": r.name, "role": role, "status": r.status.value}
            for r, role in links], "models": [
            {"model": m.model, "version": m.version, "run_id": m.run_id,
             "aliases": list(m.aliases)} for m in consumers]})
        return
    print_table(["role", "run", "run id", "status", "started (UTC)"],
                [[role, r.name, r.id[:8], r.status.value, format_time(r.start_time)]
                 for r, role in links], title=f"runs that used {version.ref}")
    if consumers:
        print_table(["model version", "run id", "created (UTC)"],
                    [[m.ref, (m.run_id or "")[:8], format_time(m.created_at)]
                     for m in consumers], title=f"models trained on {version.ref}")


@data.command("contract")
@click.argument("name")
@click.option("--file", "contract_file", type=click.Path(exists=True, path_type=Path),
              help="A YAML contract to attach.")
@click.option("--infer", "infer_from", help="Infer the contract from this version (e.g. NAME@3).")
@click.option("--remove", is_flag=True, help="Remove the dataset's contract.")
def data_contract(name: str, contract_file: Path | None, infer_from: str | None,
                  remove: bool) -> None:
    """Show, set (--file / --infer) or remove the data contract of NAME."""
    from loopml.datasets.contract import Contract

    client = open_client()
    if sum(bool(x) for x in (contract_file, infer_from, remove)) > 1:
        raise click.UsageError("use only one of --file, --infer and --remove")
    if remove:
        client.set_dataset_contract(name, None)
        click.echo(f"{name}: contract removed")
        return
    if contract_file or infer_from:
        contract = (Contract.from_yaml(contract_file.read_text()) if contract_file
                    else client.infer_dataset_contract(infer_from))
        client.set_dataset_contract(name, contract)
        click.echo(f"{name}: contract set; new versions are validated against it\n"
                   f"{contract.to_yaml()}")
        return
    with client.meta.read() as conn:
        from loopml.datasets.records import get_dataset

        dataset = get_dataset(conn, name)
    if dataset.contract is None:
        click.echo(f"{name} has no contract; set one with --file or --infer")
    else:
        click.echo(Contract.from_dict(dataset.contract).to_yaml())
