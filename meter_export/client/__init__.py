"""Python client of the meter-export API: one method per route.

Imports nothing from the server side. Answers are the API's JSON as it is
(decimals stay strings); a refusal raises ApiError with the status and, for
a 400, the bad parameter.

    client = Client("http://billing:8787", token="...")
    client.sales_order("project-id", end="2026-11-01")

or over a keystoneauth session (the endpoint from the catalog, or given):

    client = Client(session=keystone_session, endpoint="http://billing:8787")
"""

import urllib.parse

import requests

DEFAULT_TIMEOUT = 60


class ApiError(Exception):
    """The API refused the request."""

    def __init__(self, status, message, parameter=None):
        self.status, self.message, self.parameter = status, message, parameter
        super().__init__("HTTP %d: %s" % (status, message))


def _quote(project_id):
    return urllib.parse.quote(project_id, safe="")


class Unreachable(ApiError):
    """The API did not answer (connection refused, timeout, DNS)."""

    def __init__(self, endpoint, reason):
        super().__init__(0, "cannot reach %s: %s" % (endpoint, reason))


class Client:
    def __init__(self, endpoint=None, token=None, session=None, timeout=DEFAULT_TIMEOUT, service_type="rating"):
        if session is None and not endpoint:
            raise ValueError("an endpoint is needed without a keystoneauth session")
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.timeout = timeout
        if session is not None:
            from keystoneauth1 import adapter

            self._http = adapter.Adapter(session, service_type=service_type, endpoint_override=self.endpoint)
            self._keystone = True
        else:
            self._http = requests.Session()
            if token:
                self._http.headers["X-Auth-Token"] = token
            self._keystone = False

    def _call(self, method, path, json=None, params=None, accept=()):
        params = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            if self._keystone:
                response = self._http.request(path, method, json=json, params=params, raise_exc=False, timeout=self.timeout)
            else:
                response = self._http.request(method, self.endpoint + path, json=json, params=params, timeout=self.timeout)
        except requests.RequestException as e:
            raise Unreachable(self.endpoint, e.__class__.__name__)
        except Exception as e:
            if e.__class__.__module__.startswith("keystoneauth1"):
                raise Unreachable(self.endpoint or "the catalog's endpoint", e)
            raise
        try:
            body = response.json()
        except ValueError:
            body = {"error": response.text or response.reason}
        if response.status_code >= 400 and response.status_code not in accept:
            body = body if isinstance(body, dict) else {}
            raise ApiError(response.status_code, body.get("error", response.reason), body.get("parameter"))
        return body

    @staticmethod
    def _body(**fields):
        return {k: v for k, v in fields.items() if v is not None}

    # Distil v1 routes
    def sales_order(self, tenant, end=None):
        return self._call("POST", "/sales_order", self._body(tenant=tenant, end=end))

    def sales_draft(self, tenant, end=None):
        return self._call("POST", "/sales_draft", self._body(tenant=tenant, end=end))

    def sales_historic(self, tenant, date):
        return self._call("POST", "/sales_historic", self._body(tenant=tenant, date=date))

    def sales_range(self, tenant, start, end=None):
        return self._call("POST", "/sales_range", self._body(tenant=tenant, start=start, end=end))

    def collect_usage(self):
        return self._call("POST", "/collect_usage")

    # /v1 resource routes
    def orders(self, project_id, start=None, end=None):
        return self._call("GET", "/v1/projects/%s/orders" % _quote(project_id), params={"start": start, "end": end})

    def create_order(self, project_id, end=None):
        return self._call("POST", "/v1/projects/%s/orders" % _quote(project_id), self._body(end=end))

    def order(self, project_id, order_id):
        return self._call("GET", "/v1/projects/%s/orders/%d" % (_quote(project_id), int(order_id)))

    def draft(self, project_id, end=None):
        return self._call("GET", "/v1/projects/%s/draft" % _quote(project_id), params={"end": end})

    def historic(self, project_id, date):
        return self._call("GET", "/v1/projects/%s/historic" % _quote(project_id), params={"date": date})

    def usage(self, project_id, start, end=None, group_by=None):
        return self._call("GET", "/v1/projects/%s/usage" % _quote(project_id), params={"start": start, "end": end, "group_by": group_by})

    def rated(self, project_id, start, end=None, group_by=None):
        return self._call("GET", "/v1/projects/%s/rated" % _quote(project_id), params={"start": start, "end": end, "group_by": group_by})

    def prices(self):
        return self._call("GET", "/v1/prices")

    def health(self):
        """The health document; a lagging stream (503) is an answer, not an error."""
        return self._call("GET", "/v1/health", accept=(503,))

    def openapi(self):
        return self._call("GET", "/v1/openapi.json")
