"""What both source drivers do with an HTTP answer, in one place.

One name for "send it again" (:class:`TryAgain`), one table from a status
code to an error, one JSON decoder, one retry policy. Each driver words its
own messages (``describe``) and says which library exceptions it retries.
"""

import json
import logging

import orjson
import tenacity

from meter_export import sources

LOG = logging.getLogger(__name__)

# NOTE(sources): 408 Request Timeout and 429 Too Many Requests are client
# codes that the same request can get past later, like a 5xx.
TRANSIENT_STATUS = frozenset({408, 429})


class TryAgain(Exception):
    """A request failed in a way that can succeed if it is sent again.

    Never leaves a driver: after the retries it becomes SourceUnavailable.
    """


class NotFound(sources.SourceConfigError):
    """404: the object asked for does not exist (or no longer does)."""


class Gone(sources.SourceConfigError):
    """410: the API is switched off on this server."""


def error_for(status):
    """The exception class of a non-2xx status."""
    if status >= 500 or status in TRANSIENT_STATUS:
        return TryAgain
    if status == 404:
        return NotFound
    if status == 410:
        return Gone
    if 400 <= status < 500:
        return sources.SourceConfigError
    return sources.SourceError


def check(resp, describe):
    """Raise the error of a non-2xx answer, worded by ``describe(resp)``."""
    if resp.status_code < 300:
        return
    raise error_for(resp.status_code)(describe(resp))


def decode(content):
    """The JSON of a body; a body that is not JSON can succeed later.

    NOTE(bad-input): orjson refuses NaN/Infinity literals and invalid UTF-8
    anywhere in a body. The stdlib parser takes both (the bad bytes become
    lone surrogates), so only the samples holding them are quarantined, not
    the whole page.

    :raises TryAgain: cut short by a dropped connection, an HTML error page.
    """
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(content.decode("utf-8", "surrogateescape"))
    except ValueError as e:
        raise TryAgain("truncated or invalid JSON body (%s)" % e)


def retrying(retry_on, max_retries, shutdown, sleep=None):
    """Bounded exponential backoff of one request, on ``retry_on`` only.

    NOTE(sources): the backoff sleeps on the shutdown Event, as the sink's
    does, so SIGTERM cuts it short, and no retry starts once it is set.
    ``sleep`` replaces that wait (tests).
    """
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(retry_on),
        stop=tenacity.stop_after_attempt(max_retries + 1) | tenacity.stop_when_event_set(shutdown),
        wait=tenacity.wait_exponential(multiplier=0.5, max=30),
        sleep=sleep or tenacity.nap.sleep_using_event(shutdown),
        before_sleep=tenacity.before_sleep_log(LOG, logging.WARNING),
        reraise=True,
    )
