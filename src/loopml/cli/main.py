"""The ``loopml`` command. A user error prints one line and exits 1; never a traceback."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from loopml.errors import LoopmlError

__all__ = ["cli", "main"]

#: command name → "module:attribute"; a command's module is imported only when it runs (or
#: when ``--help`` lists the commands), so starting one command does not load the others.
COMMANDS = {
    "experiments": "loopml.cli.tracking:experiments",
    "runs": "loopml.cli.tracking:runs",
    "db": "loopml.cli.db:db",
    "data": "loopml.cli.data:data",
    "models": "loopml.cli.models:models",
    "run": "loopml.cli.pipelines:run",
    "pipelines": "loopml.cli.pipelines:pipelines",
    "tune": "loopml.cli.tune:tune",
    "serve": "loopml.cli.serve:serve",
    "deploy": "loopml.cli.deploy:deploy",
    "monitor": "loopml.cli.monitor:monitor",
    "agent": "loopml.cli.agent:agent",
    "events": "loopml.cli.events:events",
    "trigger": "loopml.cli.trigger:trigger",
    "review": "loopml.cli.review:review",
    "server": "loopml.cli.server:server",
    "tokens": "loopml.cli.tokens:tokens",
    "ui": "loopml.cli.ui:ui",
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attribute = target.partition(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="loopml")
def cli() -> None:
    """loopml: track, version, train, serve and monitor models."""


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
