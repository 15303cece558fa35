"""meter-export-config-generator: oslo-config-generator with our namespaces."""

import os
import sys

from oslo_config import generator

# NOTE(genconfig): the same list as etc/oslo-config-generator/meter-export.conf,
# kept here so the installed command works without a checkout; the unit test
# checks that both produce the committed sample.
NAMESPACES = ("meter_export", "cotyledon", "keystonemiddleware.auth_token", "oslo.policy")
CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(CHECKOUT, "etc", "meter-export.conf.sample")


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    if not any(a.startswith("--output-file") for a in args) and os.path.exists(os.path.join(CHECKOUT, "setup.cfg")):
        args += ["--output-file", SAMPLE]
    generator.main(["--wrap-width", "79"] + [a for ns in NAMESPACES for a in ("--namespace", ns)] + args)


if __name__ == "__main__":
    main()
