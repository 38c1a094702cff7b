"""The remote client's pieces without a server: settings, error bodies rebuilt as the same
classes, and buffered metric points sent in bounded requests without duplicates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import loopml
from loopml.client.http import HttpSession, _raise_for
from loopml.client.remote import RemoteClient
from loopml.errors import (
    BackendUnavailable,
    InvalidArgument,
    LoopmlError,
    MissingDependency,
    NotFound,
)
from loopml.server.api import wire
from loopml.tracking.writes import MetricPoint


def test_tracking_uri_and_token_settings() -> None:
    settings = loopml.load_settings(environ={"LOOPML_TRACKING_URI": "https://h:5000",
                                             "LOOPML_TRACKING_TOKEN": "lml_secret"})
    assert settings.is_remote and settings.tracking_token == "lml_secret"
    assert "lml_secret" not in repr(settings)
    with pytest.raises(InvalidArgument, match="tracking_uri must be an http"):
        loopml.load_settings(tracking_uri="ftp://h")
    with pytest.raises(InvalidArgument, match="not an http"):
        HttpSession("h:5000")
    assert not loopml.load_settings().is_remote


@pytest.mark.parametrize(("status", "body", "cls", "message"), [
    (404, b'{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no run"}', NotFound,
     "no run"),
    (500, b'{"error_code": "MISSING_DEPENDENCY", "message": "needs torch"}',
     MissingDependency, "needs torch"),
    (503, b'{"error_code": "TEMPORARILY_UNAVAILABLE", "message": "db down"}',
     BackendUnavailable, "db down"),
    (418, b'{"error_code": "SOMETHING_NEW", "message": "odd"}', LoopmlError, "odd"),
    (502, b"<html>bad gateway</html>", LoopmlError, "answered 502.*bad gateway"),
])
def test_error_bodies_become_the_same_classes(status: int, body: bytes,
                                              cls: type[LoopmlError], message: str) -> None:
    with pytest.raises(cls, match=message) as caught:
        _raise_for(status, body, "http://h/api/v1/x")
    assert type(caught.value) is cls
    if cls is LoopmlError:
        assert caught.value.http_status == status


class _FlakySession:
    """Answers the first ``ok`` requests, then fails."""

    base_url = "http://test"

    def __init__(self, ok: int) -> None:
        self.ok = ok
        self.sent: list[list[Any]] = []

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        if len(self.sent) >= self.ok:
            raise BackendUnavailable("gone")
        self.sent.append(kwargs["json"]["points"])
        return {}

    def close(self) -> None:
        pass


def test_buffered_points_go_in_bounded_requests_and_are_not_sent_twice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "POINTS_PER_REQUEST", 10)
    session = _FlakySession(ok=2)
    client = RemoteClient(loopml.load_settings(home=tmp_path), session=session)  # type: ignore[arg-type]
    points = [MetricPoint("run", "exp", "m", float(i), i, 1) for i in range(25)]
    with pytest.raises(BackendUnavailable):
        client._write_points(points)
    assert [len(sent) for sent in session.sent] == [10, 10]
    assert [p.step for p in points] == list(range(20, 25))  # only the unsent are kept
    session.ok = 10
    client._write_points(points)
    steps = [point[3] for sent in session.sent for point in sent]
    assert steps == list(range(25))
    assert session.sent[0][0] == ["run", "m", 0.0, 0, 1]
    client._metric_buffer.close()
