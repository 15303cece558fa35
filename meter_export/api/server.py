"""meter-export api: the WSGI app on cheroot, stopped gracefully by SIGTERM."""

import logging
import os
import signal
import socket
import threading

from meter_export import service
from meter_export.storage import engine as engine_mod

LOG = logging.getLogger(__name__)


def check_ready(conf, engine):
    """Start-up checks naming the option; before the port is opened.

    :raises service.ConfigError:
    """
    if conf.api.auth_strategy == "static" and not (conf.api.admin_tokens or conf.api.project_tokens):
        raise service.ConfigError("api", "admin_tokens", "auth_strategy = static needs admin_tokens or project_tokens")
    service.check_schema(engine)


def _notify_ready():
    # NOTE(api): Type=notify; the datagram systemd waits for once the port is bound.
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"READY=1", address)


def make_server(conf, app):
    from cheroot import wsgi

    return wsgi.Server((conf.api.host, conf.api.port), app, numthreads=conf.api.threads, server_name="meter-export")


def serve(conf):
    from meter_export.api import app as app_mod

    engine = engine_mod.make_engine(conf.database.connection, pool_size=conf.api.threads, max_overflow=conf.api.threads)
    check_ready(conf, engine)
    server = make_server(conf, app_mod.make_app(conf, engine=engine))

    def stop(signum, _frame):
        LOG.info("Signal %d: finishing the requests in hand, then exiting", signum)
        threading.Thread(target=server.stop, daemon=True).start()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    server.prepare()
    host, port = server.bind_addr[:2]
    LOG.info("API on http://%s:%d (auth_strategy %s)", host, port, conf.api.auth_strategy)
    _notify_ready()
    try:
        server.serve()
    finally:
        engine.dispose()
    LOG.info("API stopped")
    return 0
