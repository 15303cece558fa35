"""Process helpers shared by the Gnocchi, Ceilometer and Keystone launchers."""

import os
import socket
import time


class Server:
    """Base of the launchers: ``with GnocchiServer(...) as server:`` starts
    it and stops it on the way out; subclasses define start() and stop()."""

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def _log(self, name):
        return os.path.join(self.workdir, name + ".log")

    # NOTE(stack): the two below serve the launchers of one process group
    # (self.pid, self._proc: Ceilometer, Keystone); Gnocchi runs several and
    # has its own.

    def _signal(self, signum):
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:
            pass

    def _wait_gone(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None:
                self._proc.poll()
            if not alive(self.pid):
                return True
            time.sleep(0.05)
        return False


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def tail(path, lines=30):
    """The last lines of a log file, for a start-up failure message."""
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return "(%s)" % e


def alive(pid):
    """True while pid runs (a zombie does not count)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def cmdline(pid):
    """The raw command line of pid, b"" when it is gone."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read()
    except OSError:
        return b""


def cli(prog, venv_key, workdir_help, start, stop, argv=None, add_arguments=None):
    """``start|stop --workdir DIR`` for a launcher.

    ``start(args)`` returns a started server (or raises RuntimeError with the
    log tail); its env() is printed as export lines for a shell to eval.
    ``stop(args)`` stops the server recorded in the workdir.
    """
    import argparse
    import logging
    import os
    import sys

    from telemetry_stack import venvs

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("command", choices=["start", "stop"])
    parser.add_argument("--workdir", required=True, help=workdir_help)
    parser.add_argument("--no-build-venv", dest="build_venv", action="store_false", help="Fail instead of building a missing venv.")
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args(argv)
    args.workdir = os.path.abspath(args.workdir)
    os.makedirs(args.workdir, exist_ok=True)
    if args.command == "stop":
        return stop(args)
    if args.build_venv:
        venvs.ensure(venv_key)
    try:
        server = start(args)
    except RuntimeError as e:
        sys.exit(str(e))
    for key, value in server.env().items():
        print("export %s=%s" % (key, value))
