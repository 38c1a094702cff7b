"""Schema migrations: fresh databases, upgrades with data, and versions the code does not know."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from loopml.automation import review_tables, tables_rollout  # noqa: F401
from loopml.automation import tables as automation_tables  # noqa: F401
from loopml.datasets import tables as dataset_tables  # noqa: F401  (registers its tables)
from loopml.deployments import tables as deployment_tables  # noqa: F401
from loopml.errors import Conflict
from loopml.hpo import tables as hpo_tables  # noqa: F401
from loopml.monitoring import tables as monitoring_tables  # noqa: F401
from loopml.pipelines import tables as pipeline_tables  # noqa: F401
from loopml.registry import tables as registry_tables  # noqa: F401
from loopml.server import token_tables, upload_tables  # noqa: F401
from loopml.store import MetadataStore, metadata
from loopml.store.engine import make_engine
from loopml.store.migrate import SCHEMA_HEAD, _alembic_config, current_revision, upgrade
from loopml.tracking import tables  # noqa: F401  (registers the tracking tables)


def test_schema_head_constant_matches_alembic() -> None:
    assert ScriptDirectory.from_config(_alembic_config()).get_current_head() == SCHEMA_HEAD


def test_migrated_schema_matches_table_definitions(database_url: str) -> None:
    store = MetadataStore(database_url)
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    store.close()


def test_older_database_is_upgraded_and_backfilled(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine, "0001")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO experiments (id, name, description, created_at, "
                             "lifecycle) VALUES ('e1', 'old', '', 1, 'active')"))
        conn.execute(sa.text("INSERT INTO runs (id, experiment_id, name, status, start_time, "
                             "\"user\", lifecycle) VALUES ('r1', 'e1', 'r', 'FINISHED', 1, '', "
                             "'active')"))
        for step, value in ((0, 0.5), (2, 0.9), (1, 0.7)):
            conn.execute(sa.text("INSERT INTO metrics (run_id, key, step, timestamp, value, "
                                 "is_nan) VALUES ('r1', 'auc', :s, 1, :v, false)"),
                         {"s": step, "v": value})
    engine.dispose()
    if database_url.startswith("postgresql"):
        with pytest.raises(Conflict, match="loopml db upgrade"):
            MetadataStore(database_url)
        store = MetadataStore(database_url, auto_upgrade=True)
    else:
        store = MetadataStore(database_url)  # the embedded store upgrades itself
    assert current_revision(store.engine) == SCHEMA_HEAD
    with store.read() as conn:
        row = conn.execute(sa.text("SELECT step, value FROM latest_metrics")).one()
    assert tuple(row) == (2, 0.9)
    store.close()


def test_database_from_newer_loopml_is_refused(database_url: str) -> None:
    store = MetadataStore(database_url)
    with store.write() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    store.close()
    with pytest.raises(Conflict, match="newer loopml"):
        MetadataStore(database_url)
