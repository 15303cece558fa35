"""Gnocchi source driver (filled in by the Gnocchi work)."""

from oslo_config import cfg

OPTS = [
    cfg.StrOpt("interface", default="public", help="Endpoint interface to pick from the catalog."),
]
