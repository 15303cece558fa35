"""rate, prices and bi-role through the real CLI, and the worker's rating
after a pass (completeness marks), on the three databases."""

import datetime
import uuid
from decimal import Decimal as D

import pytest
import sqlalchemy as sa
import yaml

from meter_export.rating import mappings as mappings_mod
from meter_export.rating import rater as rater_mod
from meter_export.storage import usage as usage_mod
from meter_export.storage.samples import Sink
from tests.functional import e2e
from tests.functional import test_rating as scenario

H, HOUR = scenario.H, scenario.HOUR


def write_config(tmp_path, db_url, **rating):
    mappings = tmp_path / "mappings.yaml"
    mappings.write_text(scenario.MAPPINGS)
    lines = "".join("%s = %s\n" % kv for kv in dict(dict(mappings_file=mappings), **rating).items())
    config = tmp_path / "meter-export.conf"
    config.write_text("[database]\nconnection = %s\n[rating]\n%s" % (db_url, lines))
    prices = tmp_path / "prices.yaml"
    prices.write_text(scenario.PRICES)
    return str(config), str(prices)


def test_prices_and_rate_through_the_cli(db_url, tmp_path):
    config, prices = write_config(tmp_path, db_url)
    e2e.cli(config, "dbsync")
    sink = Sink(db_url)
    sink.write(scenario.SCENARIO)
    assert "7 written, 0 unchanged" in e2e.cli(config, "prices", "load", prices).stderr
    assert "0 written, 7 unchanged" in e2e.cli(config, "prices", "load", prices).stderr
    listing = e2e.cli(config, "prices", "list").stdout
    assert "compute.vcpus  *       vcpu    hour  0.02      EUR       2026-11-01T11:00  -" in listing and "0.000001" in listing
    result = e2e.cli(config, "rate", "--start", (H - HOUR).isoformat(), "--end", (H + 2 * HOUR).isoformat())
    assert "3/3 hours" in result.stderr
    with sink.engine.connect() as conn:
        rows = usage_mod.read_rated(conn, sink.metadata, H - HOUR, H + 2 * HOUR)
    sink.close()
    assert scenario.cost_by_project(rows) == scenario.EXPECTED_COST


@pytest.mark.parametrize(
    "entry, message",
    [
        ("{service: net.out, unit: B, per: unit, price: '2', valid_from: 2026-06-01}", "overlaps the loaded price: net.out"),
        ("{service: x, unit: B, per: unit, price: 'ten', valid_from: 2026-06-01}", "prices[0] (x): price: 'ten' is not a number"),
    ],
    ids=["overlap", "not-a-number"],
)
def test_bad_prices_exit_2_and_write_nothing(sqlite_url, tmp_path, entry, message):
    config, prices = write_config(tmp_path, sqlite_url)
    e2e.cli(config, "dbsync")
    e2e.cli(config, "prices", "load", prices)
    bad = tmp_path / "bad.yaml"
    bad.write_text("currency: EUR\nprices:\n  - %s\n" % entry)
    result = e2e.cli(config, "prices", "load", str(bad), check=False)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(e2e.cli(config, "prices", "list").stdout.splitlines()) == 8  # header + 7


def test_a_bad_mappings_file_stops_rate_before_any_write(sqlite_url, tmp_path):
    config, _ = write_config(tmp_path, sqlite_url)
    e2e.cli(config, "dbsync")
    (tmp_path / "mappings.yaml").write_text("- {meter: cpu, unit: ns, type: VM, transformer: uptime}\n")
    result = e2e.cli(config, "rate", "--start", H.isoformat(), "--end", (H + HOUR).isoformat(), check=False)
    assert result.returncode == 2
    assert "[rating] mappings_file: mappings[0] (meter cpu): transformer_config.tracked_states: required" in result.stderr


def _checkpoint(sink, meter, until):
    with sink.engine.begin() as conn:
        from meter_export import checkpoint

        checkpoint.advance(conn, sink.checkpoints, "live", ("gnocchi", "f", meter), until, until)


def test_the_worker_rates_only_what_a_pass_could_change_and_marks_final_hours(db_url):
    sink = Sink(db_url)
    from meter_export.storage import migrate

    migrate.upgrade(sink)
    sink.write(scenario.SCENARIO)
    meters = sorted({s.counter_name for s in scenario.SCENARIO})
    keys = [("gnocchi", "f", m) for m in meters]
    rater = rater_mod.PassRater(rater_mod.Rater(sink, mappings_mod.parse(yaml.safe_load(scenario.MAPPINGS))), keys, lookback=3600)
    for m in meters:
        _checkpoint(sink, m, H + 2 * HOUR)
    assert rater.after_pass()
    assert scenario.quantities(sink) == scenario.EXPECTED_QUANTITIES
    marks = _marks(sink)
    assert set(marks.values()) == {H + HOUR}  # checkpoint - lookback
    # A late sample inside lookback (hour 11) is rated on the next pass; hour 10,
    # final now, is not touched (its computed_at stays).
    before = _computed_at(sink)
    sink.write([scenario.sample("vcpus", "r2", 70, 9, project="p2")])
    for m in meters:
        _checkpoint(sink, m, H + 2 * HOUR + datetime.timedelta(minutes=5))
    assert rater.after_pass()
    quantities = scenario.quantities(sink)
    assert quantities[("compute.vcpus", "r2", H + HOUR)] == D("9")
    after = _computed_at(sink)
    assert all(after[k] == before[k] for k in before if k[2] < H + HOUR)
    assert all(after[k] > before[k] for k in before if k[2] >= H + HOUR)
    sink.close()


def test_rated_usage_final_follows_every_stream_of_the_meter(db_url, tmp_path):
    sink = Sink(db_url)
    from meter_export.rating import pricelist
    from meter_export.storage import migrate
    from meter_export.storage import prices as prices_mod

    migrate.upgrade(sink)
    sink.write(scenario.SCENARIO)
    (tmp_path / "p.yaml").write_text(scenario.PRICES)
    prices_mod.load(sink.engine, sink.metadata.tables["prices"], pricelist.load(str(tmp_path / "p.yaml")))
    keys = [("gnocchi", "a", "vcpus"), ("gnocchi", "b", "vcpus")]
    rater = rater_mod.PassRater(rater_mod.Rater(sink, mappings_mod.parse(yaml.safe_load(scenario.MAPPINGS))), keys, lookback=3600)
    with sink.engine.begin() as conn:
        from meter_export import checkpoint

        checkpoint.advance(conn, sink.checkpoints, "live", keys[0], H + 3 * HOUR, H)
        checkpoint.advance(conn, sink.checkpoints, "live", keys[1], H + 2 * HOUR, H)
    assert rater.after_pass()

    def final():
        with sink.engine.connect() as conn:
            rows = usage_mod.read_rated(conn, sink.metadata, H, H + 2 * HOUR)
        return {(r.resource_id, r.period_start): r.final for r in rows if r.service == "compute.vcpus"}

    # stream b is final up to 11:00 only: hour 10 (ends 11:00) is final, hour 11 is not
    assert final() == {("r1", H): True, ("r2", H): True, ("r1", H + HOUR): False}
    with sink.engine.begin() as conn:
        checkpoint.advance(conn, sink.checkpoints, "live", keys[1], H + 3 * HOUR, H)
    assert rater.after_pass()
    assert final() == {("r1", H): True, ("r2", H): True, ("r1", H + HOUR): True}
    with sink.engine.connect() as conn:
        view = list(conn.execute(sa.text("SELECT meter, final_until FROM stream_completeness ORDER BY filter_name")))
    assert [m for m, _ in view] == ["vcpus", "vcpus"]
    sink.close()


def _marks(sink):
    with sink.engine.connect() as conn:
        return {k: r.final_until for k, r in usage_mod.marks(conn, sink.metadata.tables["completeness"]).items()}


def _computed_at(sink):
    usage = sink.metadata.tables["usage"]
    with sink.engine.connect() as conn:
        return {(r.service, r.resource_id, r.period_start): r.computed_at for r in conn.execute(sa.select(usage))}


@pytest.mark.parametrize("server", ["pg_url", "mysql_url"])
def test_bi_role_reads_and_cannot_write(request, server, tmp_path):
    db_url = request.getfixturevalue(server)
    config, prices = write_config(tmp_path, db_url)
    e2e.cli(config, "dbsync")
    e2e.cli(config, "prices", "load", prices)
    name = "bi_" + uuid.uuid4().hex[:8]
    secret = "s3cr'et%"  # noqa: S105 (a test role; quotes and % must survive the drivers' quoting)
    e2e.cli(config, "bi-role", "--name", name, "--password", secret)
    e2e.cli(config, "bi-role", "--name", name, "--password", secret)  # again: updates, no error
    url = sa.engine.make_url(db_url).set(username=name, password=secret)
    engine = sa.create_engine(e2e.storage_engine.dress_url(url.render_as_string(hide_password=False)), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT COUNT(*) FROM prices")).scalar() == 7
            assert conn.execute(sa.text("SELECT COUNT(*) FROM rated_usage")).scalar() == 0
            with pytest.raises(sa.exc.DBAPIError):
                conn.execute(sa.text("DELETE FROM prices"))
    finally:
        engine.dispose()
        admin = sa.create_engine(e2e.storage_engine.dress_url(db_url), poolclass=sa.pool.NullPool)
        with admin.begin() as conn:
            if server == "pg_url":
                conn.exec_driver_sql('DROP OWNED BY "%s"' % name)
                conn.exec_driver_sql('DROP ROLE "%s"' % name)
            else:
                conn.exec_driver_sql("DROP USER '%s'@'%%%%'" % name)
        admin.dispose()
