"""The committed sample config must be what the generator writes today."""

import difflib
import os
import subprocess
import sys
from importlib import metadata

from meter_export import genconfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE = os.path.join(ROOT, "etc", "meter-export.conf.sample")
GENERATOR_CONF = os.path.join(ROOT, "etc", "oslo-config-generator", "meter-export.conf")


def _generate(tmp_path, name, *args):
    output = tmp_path / name
    subprocess.run([sys.executable, *args, "--output-file", str(output)], check=True, cwd=ROOT, timeout=120)
    return output.read_bytes()


def _assert_is_sample(generated, how):
    with open(SAMPLE, "rb") as f:
        committed = f.read()
    if generated != committed:
        diff = difflib.unified_diff(
            committed.decode().splitlines(), generated.decode().splitlines(), "etc/meter-export.conf.sample", how, lineterm="", n=1
        )
        raise AssertionError(
            "etc/meter-export.conf.sample is out of date (an option or its help changed). "
            "Run `tox -e genconfig` and commit the new sample.\n" + "\n".join(list(diff)[:60])
        )


def test_sample_matches_console_script(tmp_path):
    _assert_is_sample(_generate(tmp_path, "a.conf", "-m", "meter_export.genconfig"), "meter-export-config-generator")


def test_sample_matches_generator_conf_file(tmp_path):
    generated = _generate(tmp_path, "b.conf", "-m", "oslo_config.generator", "--config-file", GENERATOR_CONF)
    _assert_is_sample(generated, "oslo-config-generator --config-file " + os.path.relpath(GENERATOR_CONF, ROOT))


def test_namespaces_are_installed_entry_points():
    # NOTE(genconfig): oslo-config-generator only warns about a namespace
    # nobody provides, and leaves its section out of the sample.
    installed = {ep.name for ep in metadata.entry_points(group="oslo.config.opts")}
    with open(GENERATOR_CONF) as f:
        in_file = [line.split("=", 1)[1].strip() for line in f if line.replace(" ", "").startswith("namespace=")]
    assert in_file == list(genconfig.NAMESPACES)
    assert set(genconfig.NAMESPACES) <= installed, "not an oslo.config.opts entry point: %s" % (set(genconfig.NAMESPACES) - installed)
