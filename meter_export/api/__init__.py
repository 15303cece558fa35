"""The REST API: a Flask app factory behind Keystone or static tokens.

- ``app``: the factory (``make_app(conf)``), JSON errors;
- ``auth``: keystonemiddleware auth_token, or static tokens (Almanach's
  private-key mode), and the identity of a request;
- ``policy``: oslo.policy rules (admin sees all, a member its project);
- ``routes``: Distil's v1 routes and the /v1 resource routes;
- ``views``: the JSON of an order, a draft, usage;
- ``openapi``: the OpenAPI 3 document served at /v1/openapi.json;
- ``server``: ``meter-export api``, a cheroot WSGI server.
"""
