"""``loopml serve NAME@ALIAS``: a model server for one model alias (or version)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from loopml.store import MetadataStore

__all__ = ["serve"]


@click.command("serve")
@click.argument("model")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int,
              help="Server processes sharing the port.")
@click.option("--max-batch-size", default=32, show_default=True, type=int,
              help="Rows predicted together at most.")
@click.option("--max-wait-ms", default=2.0, show_default=True, type=float,
              help="How long a batch waits for more requests under concurrent load.")
@click.option("--token", default=None,
              help="Bearer token requests must carry (default: the serve_token setting, "
                   "$LOOPML_SERVE_TOKEN; none).")
@click.option("--max-body-bytes", default=4 * 1024 * 1024, show_default=True, type=int,
              help="Larger request bodies get 413.")
@click.option("--poll-interval", default=1.0, show_default=True, type=float,
              help="Seconds between looks at where the alias points.")
@click.option("--log-sample", default=1.0, show_default=True, type=float,
              help="Share of requests written to the payload log (0: no payload log).")
@click.option("--log-flush", default=10.0, show_default=True, type=float,
              help="Seconds between payload log segments.")
@click.option("--allow-non-finite", is_flag=True,
              help="Accept null/NaN/inf in every float input (default: only where the "
                   "input example has them).")
@click.option("--trusted", is_flag=True,
              help="Allow model packages that run code when loaded (pickle).")
def serve(model: str, host: str, port: int, workers: int, max_batch_size: int,
          max_wait_ms: float, token: str | None, max_body_bytes: int, poll_interval: float,
          log_sample: float, log_flush: float, allow_non_finite: bool, trusted: bool) -> None:
    """Serve MODEL (NAME@ALIAS, NAME/VERSION or NAME) over HTTP; follow the alias as it moves.

    POST /invocations (or /predict, /predict_proba) with dataframe_records, dataframe_split,
    instances or inputs; see /docs on the running server.
    """
    from loopml.config import load_settings
    from loopml.deployments.lookup import current_version
    from loopml.serving.options import ServeOptions
    from loopml.serving.server import serve as run_server

    settings = load_settings()
    if settings.is_remote:  # it reads the store (and follows the alias) itself
        from loopml.client.remote import store_needed

        store_needed("'loopml serve'")
    options = ServeOptions(model=model, host=host, port=port, workers=workers,
                           max_batch_size=max_batch_size, max_wait_ms=max_wait_ms,
                           token=token if token is not None else settings.serve_token or None,
                           max_body_bytes=max_body_bytes, poll_interval_s=poll_interval,
                           log_sample=log_sample, log_flush_s=log_flush,
                           allow_non_finite=allow_non_finite, trusted=trusted)

    def meta() -> MetadataStore:
        from loopml.store import MetadataStore

        return MetadataStore(settings.database_url)

    version, _ = current_version(settings, meta, options.ref)
    click.echo(f"serving {options.endpoint} (version {version}) on http://{host}:{port} "
               f"with {workers} worker(s); GET /ready answers 200 once it is warm", err=True)
    run_server(options, settings)
