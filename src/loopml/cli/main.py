"""The ``loopml`` command. A user error prints one line and exits 1; never a traceback."""

from __future__ import annotations

import sys
from typing import Any

import click

from loopml.cli.data import data
from loopml.cli.db import db
from loopml.cli.deploy import deploy
from loopml.cli.models import models
from loopml.cli.pipelines import pipelines, run
from loopml.cli.serve import serve
from loopml.cli.tracking import experiments, runs
from loopml.cli.tune import tune
from loopml.errors import LoopmlError

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="loopml")
def cli() -> None:
    """loopml: track, version, train, serve and monitor models."""


cli.add_command(experiments)
cli.add_command(runs)
cli.add_command(db)
cli.add_command(data)
cli.add_command(models)
cli.add_command(run)
cli.add_command(pipelines)
cli.add_command(tune)
cli.add_command(serve)
cli.add_command(deploy)


def main(argv: list[str] | None = None) -> Any:
    try:
        return cli.main(args=argv, prog_name="loopml", standalone_mode=False)
    except LoopmlError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
