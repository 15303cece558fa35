"""oslo.policy rules: an admin sees every project, a member only its own."""

from oslo_policy import policy

ADMIN = "rule:context_is_admin"
ADMIN_OR_OWNER = "rule:admin_or_owner"

RULES = [
    policy.RuleDefault("context_is_admin", "role:admin", description="The admin role sees and bills every project."),
    policy.RuleDefault(
        "admin_or_owner", "rule:context_is_admin or project_id:%(project_id)s", description="An admin, or a member of the project."
    ),
    policy.DocumentedRuleDefault(
        "meter_export:orders:create",
        ADMIN,
        "Issue a sales order.",
        [{"path": "/sales_order", "method": "POST"}, {"path": "/v1/projects/{project_id}/orders", "method": "POST"}],
    ),
    policy.DocumentedRuleDefault(
        "meter_export:orders:get",
        ADMIN_OR_OWNER,
        "Read a project's orders, draft, historic and range.",
        [{"path": "/v1/projects/{project_id}/orders", "method": "GET"}, {"path": "/sales_draft", "method": "POST"}],
    ),
    policy.DocumentedRuleDefault(
        "meter_export:usage:get",
        ADMIN_OR_OWNER,
        "Read a project's rated usage.",
        [{"path": "/v1/projects/{project_id}/usage", "method": "GET"}],
    ),
    policy.DocumentedRuleDefault(
        "meter_export:entities:get",
        ADMIN_OR_OWNER,
        "Read a project's instance and volume histories (Almanach's routes).",
        [{"path": "/v1/project/{project_id}/entities", "method": "GET"}, {"path": "/v1/entity/{entity_id}", "method": "GET"}],
    ),
    policy.DocumentedRuleDefault(
        "meter_export:volume_types:get", "", "Read Cinder's volume types.", [{"path": "/v1/volume_types", "method": "GET"}]
    ),
    policy.DocumentedRuleDefault("meter_export:prices:get", "", "Read the price list.", [{"path": "/v1/prices", "method": "GET"}]),
    policy.DocumentedRuleDefault(
        "meter_export:health:get", ADMIN, "Read the completeness of every stream.", [{"path": "/v1/health", "method": "GET"}]
    ),
    policy.DocumentedRuleDefault(
        "meter_export:collect:post", ADMIN, "Make the worker start a pass now.", [{"path": "/collect_usage", "method": "POST"}]
    ),
]


def list_rules():
    """For the oslo.policy entry point (oslopolicy-sample-generator)."""
    return RULES


def make_enforcer(conf):
    enforcer = policy.Enforcer(conf)
    enforcer.register_defaults(RULES)
    return enforcer
