"""Fixtures of the integration tests: the session's database with every service's tables and
Lucheng installed, a nameko config for one service, a broker connection of the test's own."""

from __future__ import annotations

import kombu
import pytest
import sqlalchemy as sa

from gridflow_app import bootstrap
from gridflow_common import nameko_support as keys
from gridflow_common.jurisdictions import JurisdictionStore
from tests.conftest import free_port, lucheng_files


@pytest.fixture(scope="session")
def engine(database_url):
    engine = sa.create_engine(database_url)
    bootstrap.upgrade_all(engine)
    JurisdictionStore(engine).install(lucheng_files())
    yield engine
    engine.dispose()


@pytest.fixture
def config(amqp_uri, database_url, engine):
    return {
        keys.AMQP_URI: amqp_uri,
        keys.DATABASE_URL: database_url,
        keys.GRIDFLOW_CLOCK: "real",
        "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}",
        "max_workers": 10,
    }


@pytest.fixture
def broker(amqp_uri):
    connection = kombu.Connection(amqp_uri)
    yield connection
    connection.release()


@pytest.fixture(scope="session")
def admin_headers(engine) -> dict[str, str]:
    """The admin's bearer token on the session's database, as `gridflow admin-token` makes it."""
    from gridflow_intake.identity import BEARER, IdentityStore

    store = IdentityStore(engine)
    admin = store.ensure_admin()
    _, token = store.issue(BEARER, label="integration tests", user_id=admin["user_id"])
    return {"Authorization": f"Bearer {token}"}
