"""Ceilometer v2 source driver (filled in by the Ceilometer work)."""

from oslo_config import cfg

OPTS = [
    cfg.IntOpt("page_size", default=1000, min=1, help="Samples asked for per request."),
]
