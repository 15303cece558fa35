"""CPU used by an idle `meter-export run` between two passes, beside a sleeping interpreter.

Usage (from the repository root; PostgreSQL from METER_EXPORT_TEST_PG_URL)::

    .venv/bin/python bench/idle_cpu.py [--seconds 60] [--workers 1]

Starts the real Ceilometer v2 API with a day of 3 meters x 10 resources
(8,640 samples), and ``meter-export run`` (the cotyledon master and its sync
worker(s); [sync] delay 3600, metrics endpoint off as by default) on a fresh
PostgreSQL database. Once the first pass has logged its last stream, it
waits 2 s, then reads the CPU time (user + system, /proc via psutil) of the
master and every child at the start and at the end of ``--seconds`` of idle
time. In the same window, the baseline is a ``python -c "import time;
time.sleep(N)"`` started before it. Printed: % of one core. Goal: under 1 %.
"""

import argparse
import datetime
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import e2e_common as common
import psutil
from e2e_common import say
from telemetry_stack import ceilometer
from telemetry_stack import venvs

METERS = ("cpu", "memory", "vcpus")


def cpu_seconds(procs):
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def wait_first_pass(log_path, streams, proc, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("meter-export run exited %s:\n%s" % (proc.returncode, open(log_path).read()[-3000:]))
        with open(log_path) as f:
            if sum(1 for line in f if " Stream " in line) >= streams:
                return
        time.sleep(0.5)
    raise TimeoutError("the first pass did not end within %ss" % timeout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    common.header("idle_cpu: CPU of an idle meter-export run between passes")
    venvs.ensure("ceilometer")
    workdir = tempfile.mkdtemp(prefix="mx-bench-idle-")
    server = ceilometer.CeilometerServer(os.path.join(workdir, "ceilometer"))
    server.start()
    db = common.Database()
    worker = None
    try:
        end = datetime.datetime.now(datetime.UTC).replace(minute=0, second=0, microsecond=0, tzinfo=None)
        start = end - datetime.timedelta(days=1)
        samples = [
            ceilometer.meter_message(m, start + datetime.timedelta(minutes=5 * i), float(i), resource_id="r%d" % r, project_id="p")
            for i in range(288)
            for r in range(10)
            for m in METERS
        ]
        server.seed(samples)
        config = common.write_config(
            workdir,
            db.url,
            "driver = ceilometer",
            {"auth_type": "none", "endpoint": server.endpoint},
            "filters:\n  - name: idle\n    query: {project_id: p}\n    meters: [%s]\n" % ", ".join(METERS),
            sync={"initial_start": start.isoformat() + "Z", "settle": 0, "delay": 3600, "max_window": 86400, "workers": args.workers},
        )
        common.cli(config, "dbsync")
        log_path = os.path.join(workdir, "run.log")
        with open(log_path, "w") as log:
            worker = subprocess.Popen([common.BIN, "--config-file", config, "run"], stdout=log, stderr=subprocess.STDOUT)
        wait_first_pass(log_path, len(METERS), worker)
        say("first pass done: %d samples in the database" % db.count())
        time.sleep(2)
        sleeper = psutil.Popen([sys.executable, "-c", "import time; time.sleep(%d)" % (args.seconds + 10)])
        time.sleep(2)  # its interpreter start-up is not idle time
        master = psutil.Process(worker.pid)
        procs = [master] + master.children(recursive=True)
        say("meter-export processes: %s" % ", ".join("%d %s" % (p.pid, " ".join(p.cmdline())[-40:]) for p in procs))
        before, sleeper_before, watch = cpu_seconds(procs), cpu_seconds([sleeper]), time.monotonic()
        time.sleep(args.seconds)
        after, sleeper_after, elapsed = cpu_seconds(procs), cpu_seconds([sleeper]), time.monotonic() - watch
        say(
            "idle meter-export run (master + %d children) over %.0fs: %.3fs CPU = %.3f%% of one core"
            % (len(procs) - 1, elapsed, after - before, 100 * (after - before) / elapsed)
        )
        say(
            "baseline python time.sleep over the same %.0fs: %.3fs CPU = %.3f%% of one core"
            % (elapsed, sleeper_after - sleeper_before, 100 * (sleeper_after - sleeper_before) / elapsed)
        )
        say("goal: under 1%% of one core; load average during the window: %s" % common.loadavg())
        sleeper.kill()
        sleeper.wait()
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
        db.drop()
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
