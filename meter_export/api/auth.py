"""Who is calling: keystonemiddleware, or static tokens for sites without Keystone.

Both leave the same identity headers (X-Roles, X-Project-Id, X-User-Id) for
the app; the headers a caller sent itself are removed first, so they cannot
be forged. Tokens are never logged.
"""

import dataclasses
import hmac

import orjson

# NOTE(api): what keystonemiddleware sets; a caller's own copies are dropped.
IDENTITY_HEADERS = ("X_IDENTITY_STATUS", "X_ROLES", "X_ROLE", "X_PROJECT_ID", "X_TENANT_ID", "X_TENANT", "X_USER_ID", "X_USER")
# NOTE(listen): /v1/info is public in Almanach, which this route follows.
PUBLIC_PATHS = frozenset({"/", "/v1/openapi.json", "/v1/info"})


@dataclasses.dataclass(frozen=True)
class Identity:
    roles: tuple
    project_id: str = None
    user_id: str = None

    @classmethod
    def from_environ(cls, environ):
        roles = tuple(r.strip() for r in environ.get("HTTP_X_ROLES", "").split(",") if r.strip())
        project = environ.get("HTTP_X_PROJECT_ID") or environ.get("HTTP_X_TENANT_ID")
        return cls(roles, project, environ.get("HTTP_X_USER_ID"))

    def credentials(self):
        return {"roles": list(self.roles), "project_id": self.project_id, "user_id": self.user_id}


def unauthorized(start_response, message="a valid X-Auth-Token header is required"):
    body = orjson.dumps({"error": message})
    start_response(
        "401 Unauthorized", [("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("WWW-Authenticate", "X-Auth-Token")]
    )
    return [body]


def _strip_identity(environ):
    for name in IDENTITY_HEADERS:
        environ.pop("HTTP_" + name, None)


class StaticTokens:
    """Almanach's private-key mode: a configured token is an identity.

    ``admin_tokens`` are admins of every project; ``project_tokens`` maps a
    token to the project whose member it is.
    """

    def __init__(self, app, admin_tokens, project_tokens):
        self.app = app
        self._tokens = [(t.encode(), ("admin",), None) for t in admin_tokens or ()]
        self._tokens += [(t.encode(), ("member",), p) for t, p in (project_tokens or {}).items()]

    def _find(self, token):
        found = None
        for known, roles, project in self._tokens:
            # NOTE(api): compare_digest against every token: no timing hint.
            if hmac.compare_digest(known, token) and found is None:
                found = (roles, project)
        return found

    def __call__(self, environ, start_response):
        _strip_identity(environ)
        token = environ.get("HTTP_X_AUTH_TOKEN", "").encode()
        found = self._find(token) if token else None
        if found is None:
            return unauthorized(start_response)
        roles, project = found
        environ["HTTP_X_IDENTITY_STATUS"] = "Confirmed"
        environ["HTTP_X_ROLES"] = ",".join(roles)
        if project:
            environ["HTTP_X_PROJECT_ID"] = project
        return self.app(environ, start_response)


class Keystone:
    """keystonemiddleware auth_token, configured from [keystone_authtoken]."""

    def __init__(self, app, conf):
        from keystonemiddleware import auth_token

        self._protocol = auth_token.AuthProtocol(app, {"oslo_config_config": conf, "delay_auth_decision": False})

    def __call__(self, environ, start_response):
        # NOTE(api): keystonemiddleware's own 401 body nests the message; the
        # API's errors are {"error": "<message>"} everywhere.
        refused = []

        def capture(status, headers, exc_info=None):
            if status.startswith("401"):
                refused.append(status)
                return lambda data: None
            return start_response(status, headers, exc_info)

        body = self._protocol(environ, capture)
        if refused:
            if hasattr(body, "close"):
                body.close()
            return unauthorized(start_response, "Keystone did not accept the X-Auth-Token header (missing, invalid or expired)")
        return body


class PublicPaths:
    """The paths anyone may read go around the authentication."""

    def __init__(self, app, protected):
        self.app, self.protected = app, protected

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO", "/") in PUBLIC_PATHS:
            _strip_identity(environ)
            return self.app(environ, start_response)
        return self.protected(environ, start_response)


def wrap(app, conf):
    """The app behind the configured [api] auth_strategy."""
    if conf.api.auth_strategy == "keystone":
        protected = Keystone(app, conf)
    else:
        protected = StaticTokens(app, conf.api.admin_tokens, conf.api.project_tokens)
    return PublicPaths(app, protected)
