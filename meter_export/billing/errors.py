"""What billing answers when it refuses; the API maps each kind to a status."""


class BillingError(Exception):
    """Base of every refusal; the message is meant for the caller."""


class BadParameter(BillingError):
    """A caller's parameter is malformed; ``parameter`` names it."""

    def __init__(self, parameter, reason):
        self.parameter = parameter
        super().__init__("%s: %s" % (parameter, reason))


class Refused(BillingError):
    """The request is well formed but the data forbids it (HTTP 409)."""


class EmptyPeriod(Refused):
    """The period would have no length (its end is not after its start)."""


class Overlap(Refused):
    """Another order of the project already covers part of the period."""


class NotFinal(Refused):
    """The period ends after the data is final (the completeness mark)."""


class MixedCurrencies(Refused):
    """The period's rated usage is priced in more than one currency."""


class NotFound(BillingError):
    """No order matches (HTTP 404)."""
