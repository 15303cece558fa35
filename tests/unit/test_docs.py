"""README.rst and doc/*.rst are valid reStructuredText: a malformed table
renders as an error block where BI users and operators read the figures."""

import pathlib

import docutils.core
import docutils.utils
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.rst", *sorted((ROOT / "doc").glob("*.rst"))]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_document_parses_without_errors(path):
    settings = {"report_level": docutils.utils.Reporter.WARNING_LEVEL, "halt_level": docutils.utils.Reporter.WARNING_LEVEL}
    try:
        docutils.core.publish_doctree(path.read_text(), source_path=str(path), settings_overrides=settings)
    except docutils.utils.SystemMessage as e:
        pytest.fail("%s: %s" % (path.name, e))
