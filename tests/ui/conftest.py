"""Fixtures of the web UI's tests: a seeded store (``ui_seed``) per module, served by
``loopml server``'s application on a free port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import ui_seed


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ui_seed.Seeded]:
    home = tmp_path_factory.mktemp("ui") / ".loopml"
    home.mkdir()
    data = ui_seed.seed(home)
    yield data
    data.client.close()


@pytest.fixture(scope="module")
def base_url(seeded: ui_seed.Seeded) -> Iterator[str]:
    with ui_seed.serving(seeded.client) as url:
        yield url
