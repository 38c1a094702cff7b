"""The stage of the demo (examples/demo.py): its workspace, the model server, the callers and
the printed timeline. None of this is loopml's loop itself; it is what a user's environment
provides around it (a server process, clients sending requests, a terminal).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import shutil
import socket
import tempfile
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import loopml
from loopml.automation.events import Event, list_events

__all__ = ["DemoFailed", "Server", "Workspace", "check", "expect_kinds", "make_workspace",
           "print_events", "send", "wait_logged"]

HERE = Path(__file__).resolve().parent
PIPELINE = "churn_pipeline.py"
WIDTH = 100


class DemoFailed(Exception):
    """A step of the loop did not happen as it should (the demo exits 1)."""


def check(condition: bool, what: str) -> None:
    if not condition:
        raise DemoFailed(what)


# -- the workspace -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Workspace:
    """A project directory: the pipeline, ``loopml.yaml``, the embedded store ``.loopml``,
    the data files, the HTML report and the log of the server and the agent."""

    root: Path

    @property
    def store(self) -> Path:
        return self.root / ".loopml"

    @property
    def pipeline(self) -> Path:
        return self.root / PIPELINE

    @property
    def project(self) -> Path:
        return self.root / "loopml.yaml"

    @property
    def log(self) -> Path:
        return self.root / "loopml.log"

    def data(self, name: str) -> Path:
        (self.root / "data").mkdir(exist_ok=True)
        return self.root / "data" / name

    def settings(self) -> loopml.Settings:
        """The embedded default store of the workspace, whatever LOOPML_* the shell has."""
        return loopml.load_settings(environ={}, config_file=self.root / "loopml.toml",
                                    home=self.store, progress=False)


def make_workspace(path: Path | None, project_yaml: str) -> Workspace:
    """A fresh workspace (a new temporary directory when ``path`` is None)."""
    if path is None:
        root = Path(tempfile.mkdtemp(prefix="loopml-demo-"))
    else:
        root = path.resolve()
        if root.exists() and any(root.iterdir()):
            raise DemoFailed(f"{root} is not empty; give a new or empty directory")
        root.mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / PIPELINE, root / PIPELINE)
    (root / "loopml.yaml").write_text(project_yaml)
    return Workspace(root)


def log_to_file(path: Path) -> None:
    """loopml's and uvicorn's log lines (and Python warnings) go to ``path``, not the
    terminal."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    for name in ("loopml", "uvicorn", "uvicorn.error", "py.warnings"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(logging.INFO)
    logging.getLogger("uvicorn.access").disabled = True  # one line per request: too many
    logging.captureWarnings(True)


# -- the model server --------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``loopml deploy serve DEPLOYMENT`` in a thread of this process (uvicorn), writing its
    payload log every half second so that monitoring and the rollouts see requests at once."""

    def __init__(self, deployment: str, settings: loopml.Settings, log: Path) -> None:
        import uvicorn

        from loopml.serving import ServeOptions
        from loopml.serving.server import uvicorn_config

        self.port = _free_port()
        options = ServeOptions(deployment=deployment, port=self.port, poll_interval_s=0.2,
                               log_flush_s=0.5)
        self.server = uvicorn.Server(uvicorn_config(options, settings))
        log_to_file(log)  # after uvicorn configured its logging
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while _get(self.port, "/ready") != 200:
            check(self.thread.is_alive() and time.monotonic() < deadline,
                  f"the model server did not become ready (see {log})")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def _get(port: int, path: str) -> int | None:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", path)
        status = conn.getresponse().status
        conn.close()
        return status
    except OSError:
        return None


# -- the callers -------------------------------------------------------------------------------
def send(port: int, rows: Sequence[dict[str, Any]], *, threads: int = 4,
         until: Callable[[], bool] | None = None, seconds: float | None = None
         ) -> Counter[tuple[int, int | None]]:
    """POST each row to ``/predict`` (cycling through ``rows`` for ``seconds``, or until
    ``until()`` holds, when given); counts of (HTTP status, version that answered)."""
    counts: Counter[tuple[int, int | None]] = Counter()
    lock = threading.Lock()
    stop_at = None if seconds is None else time.monotonic() + seconds
    cursor = iter(range(10**9))

    def caller() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: Counter[tuple[int, int | None]] = Counter()
        while True:
            with lock:
                index = next(cursor)
            if stop_at is None and until is None and index >= len(rows):
                break
            if (stop_at is not None and time.monotonic() > stop_at) or (
                    until is not None and index % 20 == 0 and until()):
                break
            body = json.dumps({"dataframe_records": [rows[index % len(rows)]]})
            conn.request("POST", "/predict", body=body,
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            answer = json.loads(response.read())
            mine[(response.status, answer.get("version"))] += 1
        conn.close()
        with lock:
            counts.update(mine)

    workers = [threading.Thread(target=caller) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return counts


def wait_logged(client: loopml.Client, endpoint: str, rows: int, timeout: float = 30) -> None:
    """Wait until the server's payload log holds ``rows`` requests of ``endpoint``."""
    from loopml.deployments.payload import list_segments

    deadline = time.monotonic() + timeout
    while True:
        with client.meta.read() as conn:
            logged = sum(s.rows for s in list_segments(conn, endpoint=endpoint,
                                                       kind="requests"))
        if logged >= rows:
            return
        check(time.monotonic() < deadline, f"the payload log of {endpoint} holds {logged} "
                                           f"requests after {timeout:g} s, not {rows}")
        time.sleep(0.1)


def describe_answers(counts: Counter[tuple[int, int | None]]) -> str:
    total = sum(counts.values())
    failed = sum(n for (status, _), n in counts.items() if status != 200)
    versions: Counter[int | None] = Counter()
    for (status, version), n in counts.items():
        if status == 200:
            versions[version] += n
    by = ", ".join(f"v{v}: {n:,}" for v, n in sorted(versions.items(), key=lambda i: i[0] or 0))
    return f"{total:,} requests, {failed} failed (answered by {by})"


# -- the timeline ------------------------------------------------------------------------------
def events_since(client: loopml.Client, since: int) -> list[Event]:
    return list_events(client.meta, since=since, limit=10_000)


def expect_kinds(events: Iterable[Event], expected: Sequence[str], what: str) -> None:
    """``expected`` appear in this order among the kinds of ``events`` (others between)."""
    kinds = [e.kind for e in events]
    position = 0
    for kind in kinds:
        if position < len(expected) and kind == expected[position]:
            position += 1
    check(position == len(expected), f"{what}: expected the events {', '.join(expected)} in "
                                     f"this order; the timeline has {', '.join(kinds) or 'none'}")


def _who(event: Event) -> str:
    if event.version is not None and event.model and not event.kind.startswith("alert_"):
        return f"{event.model} v{event.version}"
    if event.trigger:
        return f"trigger {event.trigger}"
    return event.deployment or event.model or ""


def print_events(events: Iterable[Event], start: int, *, skip: Sequence[str] = (),
                 brief: bool = False) -> None:
    """One entry per event: seconds since ``start``, kind, what it is about, and the reason
    with its numbers, wrapped to the terminal (``brief``: cut to one line). A rejection's
    reason, which repeats its gate's verdict, is shortened."""
    indent = " " * 10
    previous = None
    for event in events:
        if event.kind in skip:
            continue
        reason = event.reason or "-"
        if event.kind == "rejected" and previous is not None and previous.kind == "gate_failed":
            reason = reason.replace(previous.reason, "the gate's verdict above")
        previous = event
        head = f"{(event.at - start) / 1000:7.1f}s  {event.kind:<20} {_who(event)}"
        lines = textwrap.wrap(reason, width=WIDTH, initial_indent=indent,
                              subsequent_indent=indent, break_on_hyphens=False)
        if brief and len(lines) > 2:
            lines = [*lines[:1], lines[1][:WIDTH - 1] + "…"]
        print(head, *lines, sep="\n")


def say(text: str = "", *, indent: int = 3) -> None:
    """A paragraph of the story, wrapped."""
    if not text:
        print()
        return
    print(textwrap.fill(text, width=WIDTH, initial_indent=" " * indent,
                        subsequent_indent=" " * indent, break_on_hyphens=False), flush=True)


@contextlib.contextmanager
def step(title: str) -> Any:
    """A numbered part of the story with its duration."""
    started = time.monotonic()
    print(f"\n== {title}", flush=True)
    yield
    print(f"   ({time.monotonic() - started:.1f} s)", flush=True)
