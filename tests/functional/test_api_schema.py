"""schemathesis: the API answers as its OpenAPI document says, on generated requests.

METER_EXPORT_SCHEMATHESIS_EXAMPLES sets the examples per operation (default 25).
"""

import os

import hypothesis
import pytest
import schemathesis
from schemathesis import checks

from meter_export.api import app as app_mod
from tests.functional import api_helpers
from tests.functional import billing_data as data
from tests.functional.billing_data import T0
from tests.functional.billing_data import H

EXAMPLES = int(os.environ.get("METER_EXPORT_SCHEMATHESIS_EXAMPLES", "25"))


class _Delegate:
    """The WSGI app schemathesis calls; the fixture points it at a configured API.

    NOTE(api): schemathesis' lazy fixture loader does not work with pytest 9,
    so the schema is loaded at import, from an app that needs no database to
    serve its document.
    """

    def __init__(self):
        self.target = app_mod.make_flask(None, None)

    def __call__(self, environ, start_response):
        return self.target(environ, start_response)


WSGI = _Delegate()
schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", WSGI)


@pytest.fixture(autouse=True)
def _configured_api(tmp_path, sqlite_url):
    engine = data.prepare(sqlite_url)
    data.add(engine, data.hours("p1", "vm-1", "m1.small", T0, 48))
    data.mark_final(engine, data.NOW - H)  # fresh: /v1/health answers 200
    WSGI.target = api_helpers.make(api_helpers.conf(tmp_path, sqlite_url), engine, data.NOW).client.application
    yield
    engine.dispose()


@schema.parametrize()
@hypothesis.settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
def test_api_matches_its_openapi_document(case):
    # NOTE(api): a schema-valid request may still be refused with 400 for a
    # rule no schema can say (end after start, on a whole hour, not in the
    # future, a real calendar date): positive_data_acceptance is left out.
    case.call_and_validate(headers={"X-Auth-Token": api_helpers.ADMIN}, excluded_checks=[checks.positive_data_acceptance])
