"""What `gridflow amqp-users sync` lets each department's and unit's RabbitMQ user do: configure
nothing, write the status exchange only, read its own queues only (a department its units'
too), never another's, however its name is spelt; passwords by reference or generated, and
written for their owner alone."""

from __future__ import annotations

import re
import stat

import pytest

from gridflow_app import amqp_users as au
from gridflow_app.bootstrap import LUCHENG
from gridflow_common import contracts as c
from gridflow_common.domain.jurisdiction import AdapterConfig
from gridflow_common.domain.jurisdiction_files import load_folder
from tests.support.status_back import with_adapters

STATION = "police-330302104"


@pytest.fixture(scope="module")
def lucheng():
    return load_folder(LUCHENG)


def _account(j, code) -> au.AmqpAccount:
    [account] = au.accounts(j, [code])
    return account


def _reads(account: au.AmqpAccount, queue: str) -> bool:
    return re.fullmatch(account.read, queue) is not None


def test_a_unit_reads_its_own_queue_and_replies_only(lucheng):
    account = _account(lucheng, STATION)
    assert account.user == "gridflow-police-330302104"
    assert _reads(account, c.unit_queue(STATION))
    assert _reads(account, c.reply_queue(STATION))
    for other in (
        c.unit_queue("police-330302001"),
        c.department_queue("police"),
        c.reply_queue("police"),
        c.STATUS_QUEUE,
        # A name that starts or ends like its own is not its own.
        c.unit_queue(STATION) + "x",
        "x" + c.unit_queue(STATION),
        c.unit_queue(STATION) + "|.*",
    ):
        assert not _reads(account, other), other


def test_a_department_reads_its_queue_its_units_queues_and_its_replies(lucheng):
    account = _account(lucheng, "police")
    units = [u.code for u in lucheng.units if u.department_code == "police"]
    assert len(units) > 1
    for unit in units:
        assert _reads(account, c.unit_queue(unit))
    assert _reads(account, c.department_queue("police"))
    assert _reads(account, c.reply_queue("police"))
    assert not _reads(account, c.unit_queue("fire-330302"))
    assert not _reads(account, c.reply_queue(STATION))


def test_no_one_configures_anything_and_writes_only_the_status_exchange(lucheng):
    for account in au.accounts(lucheng):
        assert account.configure == "^$"
        assert re.fullmatch(account.write, c.STATUS_EXCHANGE)
        for exchange in (c.CASE_EXCHANGE, c.REPLY_EXCHANGE, "amq.default", "", "gridflow.statusx"):
            assert not re.fullmatch(account.write, exchange), exchange


def test_every_department_and_unit_served_through_amqp_gets_a_user(lucheng):
    codes = {a.code for a in au.accounts(lucheng)}
    assert codes == {d.code for d in lucheng.departments} | {u.code for u in lucheng.units}


def test_a_department_served_by_another_adapter_gets_no_user(lucheng):
    j = with_adapters(lucheng, [AdapterConfig("fire", "webhook", endpoint="http://x/")])
    codes = {a.code for a in au.accounts(j)}
    assert "fire" not in codes
    assert not any(code.startswith("fire-") for code in codes)
    with pytest.raises(ValueError, match="fire"):
        au.accounts(j, ["fire"])


def test_passwords_by_reference_and_generated_ones_written_for_the_owner_alone(
    lucheng, monkeypatch, tmp_path
):
    monkeypatch.setenv("AMQP_PW_POLICE_330302104", "from-the-environment")
    assert au.password_from("env:AMQP_PW_{CODE}", STATION) == "from-the-environment"
    (tmp_path / f"amqp-{STATION}").write_text("from-a-file\n")
    assert au.password_from(f"file:{tmp_path}/amqp-{{code}}", STATION) == "from-a-file"

    class Broker:
        def __init__(self):
            self.users: dict[str, str | None] = {"gridflow-police": None}
            self.permissions: dict[str, tuple] = {}

        def user_exists(self, user):
            return user in self.users

        def put_user(self, user, password):
            self.users[user] = password

        def set_permissions(self, vhost, user, configure, write, read):
            self.permissions[user] = (vhost, configure, write, read)

    broker = Broker()
    synced = au.sync(broker, "/gf", au.accounts(lucheng, ["police", STATION]))
    # The existing user keeps its password; the new one gets a generated one, once.
    assert [(s.account.code, s.created, bool(s.password)) for s in synced] == [
        ("police", False, False),
        (STATION, True, True),
    ]
    assert broker.users["gridflow-police"] is None
    assert broker.permissions["gridflow-police"][0:2] == ("/gf", "^$")
    path = tmp_path / "passwords"
    au.write_passwords(path, synced)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == f"gridflow-{STATION}\t{synced[1].password}\n"


def test_the_vhost_is_the_amqp_uris():
    assert au.vhost_of("amqp://guest:guest@127.0.0.1:5672/") == "/"
    assert au.vhost_of("amqp://guest:guest@127.0.0.1:5672/gridflow_test_1") == "gridflow_test_1"
    assert au.vhost_of("amqp://guest:guest@127.0.0.1:5672/%2Fprod") == "/prod"
