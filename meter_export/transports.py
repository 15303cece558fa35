"""The CLI's two transports over one set of operations, answering the same JSON.

``Remote`` goes through the Python client to an API endpoint; ``Local`` runs
the same billing operations in-process against [database] (for operators on
the database host and for cron jobs). A refusal is a client.ApiError on both.
"""

import contextlib

from meter_export.client import ApiError


class Remote:
    def __init__(self, client):
        self.client = client

    def create(self, project, end=None):
        return self.client.sales_order(project, end=end)

    def draft(self, project, end=None):
        return self.client.sales_draft(project, end=end)

    def historic(self, project, date):
        return self.client.sales_historic(project, date)

    def range(self, project, start, end=None):
        return self.client.sales_range(project, start, end=end)

    def show(self, project, order_id):
        return self.client.order(project, order_id)

    def usage(self, project, start, end=None, group_by=None, rated=False):
        call = self.client.rated if rated else self.client.usage
        return call(project, start, end=end, group_by=group_by)

    def close(self):
        pass


class Local:
    """The operations in this process; views.* gives the API's exact JSON."""

    def __init__(self, conf):
        from meter_export import service
        from meter_export.billing import operations
        from meter_export.storage import engine as engine_mod

        self.engine = engine_mod.make_engine(conf.database.connection)
        try:
            service.check_schema(self.engine)
        except service.ConfigError:
            self.engine.dispose()
            raise
        self.billing = operations.Billing(self.engine, currency=conf.billing.default_currency)

    @contextlib.contextmanager
    def _refusals(self):
        from meter_export.api import app as app_mod
        from meter_export.billing import errors

        try:
            yield
        except errors.BillingError as e:
            status = next(code for kind, code in app_mod.STATUS if isinstance(e, kind))
            raise ApiError(status, str(e), getattr(e, "parameter", None))

    def _run(self, view, operation, *args):
        with self._refusals():
            return view(operation(*args))

    def create(self, project, end=None):
        from meter_export.api import views

        return self._run(views.order, self.billing.order, project, end)

    def draft(self, project, end=None):
        from meter_export.api import views

        return self._run(lambda r: views.draft(*r), self.billing.draft, project, end)

    def historic(self, project, date):
        from meter_export.api import views

        return self._run(lambda r: views.historic(*r), self.billing.historic, project, date)

    def range(self, project, start, end=None):
        from meter_export.api import views

        return self._run(views.orders, self.billing.range, project, start, end)

    def show(self, project, order_id):
        from meter_export.api import views

        order = self._run(views.order, self.billing.show, order_id)
        if order["project_id"] != project:
            raise ApiError(404, "no sales order %s in project %s" % (order_id, project))
        return order

    def usage(self, project, start, end=None, group_by=None, rated=False):
        from meter_export.api import views

        group_by = group_by or "service"
        with self._refusals():
            period, rows = self.billing.usage(project, start, end, group_by)
        return views.usage(project, period, group_by, rows, with_cost=rated)

    def close(self):
        self.engine.dispose()
