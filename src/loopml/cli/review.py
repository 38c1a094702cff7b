"""``loopml review``: confirm or correct served predictions; the labels become a new dataset
version and monitoring feedback (see :mod:`loopml.automation.review`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from loopml.cli.options import json_option, open_client
from loopml.cli.output import format_value, print_json, print_table
from loopml.errors import InvalidArgument, NotFound

__all__ = ["review"]

_FEATURES_SHOWN = 4


def _target_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--model, --dataset, --target: what labels go to, when it cannot be read."""
    for option in reversed((
            click.option("--model", default=None, help="The model version labelled "
                         "(default: what the deployment serves)."),
            click.option("--dataset", default=None, help="The dataset the rows are appended "
                         "to (default: the model version's training dataset)."),
            click.option("--target", default=None, help="The label column (default: the "
                         "model's monitoring reference, or the one non-input column)."))):
        command = option(command)
    return command


def _queue(endpoint: str, *, model: str | None = None, dataset: str | None = None,
           target: str | None = None, fill: dict[str, Any] | None = None) -> Any:
    from loopml.automation.review import ReviewQueue

    return ReviewQueue(endpoint, client=open_client(), model=model, dataset=dataset,
                       target=target, fill=fill)


def _features(features: dict[str, Any]) -> str:
    shown = [f"{k}={format_value(v)}" for k, v in list(features.items())[:_FEATURES_SHOWN]]
    more = len(features) - _FEATURES_SHOWN
    return ", ".join(shown) + (f", … (+{more})" if more > 0 else "")


@click.group("review")
def review() -> None:
    """Review served predictions: the least confident and a random sample of the rest."""


@review.command("list")
@click.argument("deployment")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--status", type=click.Choice(["pending", "labelled", "skipped", "committed",
                                             "all"]), default="pending", show_default=True)
@click.option("--refresh/--no-refresh", default=True, show_default=True,
              help="Queue new rows from the payload log first.")
@click.option("--uncertain", type=click.IntRange(min=0), default=20, show_default=True,
              help="Keep this many of the least confident rows pending.")
@click.option("--sample", type=click.FloatRange(0, 1), default=0.05, show_default=True,
              help="Share of the other rows drawn at random.")
@click.option("--max-sample", type=click.IntRange(min=0), default=100, show_default=True,
              help="Keep at most this many random rows pending.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the random sample (the same seed draws the same rows).")
@json_option
def list_items(deployment: str, limit: int, status: str, refresh: bool, uncertain: int,
               sample: float, max_sample: int, seed: int, as_json: bool) -> None:
    """Items of DEPLOYMENT to review: least confident first, then the random sample."""
    queue = _queue(deployment)
    if refresh:
        queue.refresh(uncertain=uncertain, sample=sample, max_sample=max_sample, seed=seed)
    items = queue.list(status=None if status == "all" else status, limit=limit)
    if as_json:
        print_json([item.to_dict() for item in items])
        return
    counts = queue.counts()
    title = (f"{len(items)} {'' if status == 'all' else status + ' '}item(s) of {deployment} "
             f"({', '.join(f'{n} {s}' for s, n in counts.items())})")
    print_table(("item", "reason", "confidence", "prediction", "label", "request", "features"),
                [(i.id, i.reason, i.confidence, i.prediction, i.label,
                  i.request_id if i.rows == 1 else f"{i.request_id} [{i.row}]",
                  _features(i.features)) for i in items], title=title)


@review.command("show")
@click.argument("item")
@json_option
def show(item: str, as_json: bool) -> None:
    """One item: its features, prediction, confidence and label."""
    from loopml.automation.review import get_review_item

    found = get_review_item(item, client=open_client())
    if as_json:
        print_json(found.to_dict())
        return
    _print_item(found)


def _print_item(item: Any) -> None:
    click.echo(f"item {item.id}  {item.endpoint}  request {item.request_id}"
               + (f" row {item.row} of {item.rows}" if item.rows > 1 else "")
               + f"  ({item.reason}, {item.status})")
    print_table(("feature", "value"), list(item.features.items()))
    click.echo(f"prediction: {format_value(item.prediction)}   confidence: "
               f"{format_value(item.confidence)}"
               + ("" if item.label is None else f"   label: {format_value(item.label)}"))


def _endpoint_of(item: str, deployment: str | None) -> str:
    from loopml.automation.review import get_review_item

    if deployment is not None:
        return deployment
    try:
        return str(get_review_item(item, client=open_client()).endpoint)
    except NotFound:
        raise NotFound(f"no review item {item!r}; to label a request by its id, name its "
                       "deployment with --deployment") from None


def _only_endpoint() -> str:
    from loopml.automation.review import review_endpoints

    waiting = [e for e, counts in review_endpoints(client=open_client()).items()
               if counts["pending"]]
    if len(waiting) != 1:
        raise InvalidArgument(f"name the deployment to review with --deployment; "
                              f"deployments with pending items: {', '.join(waiting) or 'none'}")
    return waiting[0]


@review.command("label")
@click.argument("item", required=False)
@click.argument("label", required=False)
@click.option("--deployment", "-d", default=None, help="The deployment (needed for a "
              "request id, or to choose what --interactive reviews).")
@click.option("--row", type=click.IntRange(min=0), default=None,
              help="The row of a request of several rows.")
@click.option("--interactive", "-i", is_flag=True, help="Review the pending items one by "
              "one: Enter confirms the prediction, a value corrects it, s skips, q quits.")
@_target_options
def label(item: str | None, label: str | None, deployment: str | None, row: int | None,
          interactive: bool, model: str | None, dataset: str | None,
          target: str | None) -> None:
    """Give ITEM (an item id, or a request id with --deployment) its true LABEL."""
    if interactive:
        if item is not None or label is not None:
            raise InvalidArgument("--interactive takes no ITEM or LABEL; name the deployment "
                                  "with --deployment")
        _interactive(_queue(deployment or _only_endpoint(), model=model, dataset=dataset,
                            target=target))
        return
    if item is None or label is None:
        raise InvalidArgument("give ITEM and LABEL (loopml review label 3fa2c1d09b7e 1), or "
                              "--interactive")
    queue = _queue(_endpoint_of(item, deployment), model=model, dataset=dataset,
                   target=target)
    done = queue.label(item, label, row=row)
    click.echo(f"labelled {done.id} ({done.request_id}) as {format_value(done.label)}"
               + ("" if done.label == done.prediction else
                  f" (predicted {format_value(done.prediction)})"))


def _interactive(queue: Any) -> None:
    items = queue.list(limit=1000)
    if not items:
        queue.refresh()
        items = queue.list(limit=1000)
    labelled = skipped = 0
    for number, item in enumerate(items, start=1):
        click.echo(f"\n[{number}/{len(items)}]")
        _print_item(item)
        while True:
            answer = click.prompt(f"label [Enter: {format_value(item.prediction)}, "
                                  "s: skip, q: quit]", default="", show_default=False).strip()
            try:
                if answer == "q":
                    _summary(queue.endpoint, labelled, skipped)
                    return
                if answer == "s":
                    queue.skip(item.id)
                    skipped += 1
                elif answer == "":
                    queue.confirm(item.id)
                    labelled += 1
                else:
                    queue.label(item.id, answer)
                    labelled += 1
                break
            except InvalidArgument as exc:
                click.echo(f"error: {exc}", err=True)
    _summary(queue.endpoint, labelled, skipped)


def _summary(endpoint: str, labelled: int, skipped: int) -> None:
    click.echo(f"\n{labelled} labelled, {skipped} skipped"
               + (f"; run 'loopml review commit {endpoint}' to add them to the dataset"
                  if labelled else ""))


def _fill(pairs: tuple[str, ...]) -> dict[str, Any]:
    fill: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InvalidArgument(f"--set takes COLUMN=VALUE, got {pair!r}")
        fill[name] = value
    return fill


@review.command("commit")
@click.argument("deployment", required=False)
@click.option("--set", "fill", multiple=True, metavar="COLUMN=VALUE",
              help="A value for a dataset column the requests do not hold (repeatable).")
@_target_options
@json_option
def commit(deployment: str | None, fill: tuple[str, ...], model: str | None,
           dataset: str | None, target: str | None, as_json: bool) -> None:
    """Append the labelled items (of DEPLOYMENT, or of every deployment) to the dataset as a
    new version and write their labels as monitoring feedback."""
    from loopml.automation.review import review_endpoints

    values = _fill(fill)
    if deployment is not None:
        endpoints = [deployment]
    else:
        endpoints = [e for e, counts in review_endpoints(client=open_client()).items()
                     if counts["labelled"]]
    results = {e: _queue(e, model=model, dataset=dataset, target=target, fill=values).commit()
               for e in endpoints}
    if as_json:
        print_json({e: r.to_dict() for e, r in results.items()})
        return
    if not results:
        click.echo("nothing to commit: no labelled items")
    for endpoint, result in results.items():
        if result.dataset_version is None and not result.recovered:
            click.echo(f"{endpoint}: nothing to commit"
                       + (f" ({result.feedback} feedback row(s) written)"
                          if result.feedback else ""))
            continue
        if result.dataset_version is not None:
            click.echo(f"{endpoint}: added {result.dataset_version} with {result.rows} "
                       f"labelled row(s) ({result.corrected} corrected), "
                       f"{result.feedback} feedback row(s)")
        if result.recovered:
            click.echo(f"{endpoint}: finished an interrupted commit of {result.recovered} "
                       "row(s)")
        if result.missing_columns:
            click.echo(f"{endpoint}: the requests held no {', '.join(result.missing_columns)};"
                       " those columns were left empty (give values with --set)")
