//! The Nova policy the lab enforces, as oslo.policy does with Nova's default
//! rules (openstack/nova `nova/policies/*.py`): an admin token may do
//! everything; a token without the admin role only what the defaults give a
//! project member, plus what the site's policy grants it ([`NovaPolicy`]).

use std::collections::BTreeSet;

use serde::Serialize;

use crate::world::WorldState;

/// Rules whose default (`PROJECT_READER_OR_ADMIN`, `PROJECT_MEMBER_OR_ADMIN`)
/// lets a member act on its own project's servers. Every other rule the lab
/// checks defaults to `ADMIN` (or `PROJECT_MANAGER_OR_ADMIN`, a role the lab's
/// member user does not have).
const MEMBER_DEFAULTS: [&str; 7] = [
    "os_compute_api:servers:detail",
    "os_compute_api:servers:index",
    "os_compute_api:servers:show",
    "os_compute_api:servers:confirm_resize",
    "os_compute_api:servers:start",
    "os_compute_api:servers:stop",
    "os_compute_api:servers:reboot",
];

/// What a site's `policy.yaml` grants the member role beyond Nova's defaults.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct NovaPolicy {
    pub member_grants: BTreeSet<String>,
}

impl NovaPolicy {
    /// A site that lets an operator role list, move and disable across
    /// projects, but keeps two admin-only rules at their defaults: the `host`
    /// filter (`servers:allow_all_filters`) and the host names of migrations
    /// (`os-migrations:index:host`). Nova then drops the filter silently and
    /// answers `null` hosts.
    pub fn operator_without_host_rules() -> Self {
        let grants = [
            "os_compute_api:servers:detail:get_all_tenants",
            "os_compute_api:servers:index:get_all_tenants",
            "os_compute_api:os-extended-server-attributes",
            "os_compute_api:os-services:list",
            "os_compute_api:os-services:update",
            "os_compute_api:os-migrations:index",
            "os_compute_api:os-migrations:index:all_projects",
            "os_compute_api:os-hypervisors:list",
            "os_compute_api:os-hypervisors:list-detail",
            "os_compute_api:os-hypervisors:show",
            "os_compute_api:os-aggregates:index",
            "os_compute_api:os-migrate-server:migrate",
            "os_compute_api:os-migrate-server:migrate_live",
            "os_compute_api:servers:migrations:index",
            "os_compute_api:servers:migrations:show",
            "os_compute_api:servers:migrations:delete",
            "os_compute_api:servers:migrations:force_complete",
        ];
        NovaPolicy { member_grants: grants.iter().map(|rule| (*rule).to_owned()).collect() }
    }

    /// The same policy with more rules granted.
    pub fn granting(mut self, rules: &[&str]) -> Self {
        self.member_grants.extend(rules.iter().map(|rule| (*rule).to_owned()));
        self
    }

    /// The same policy with rules taken back.
    pub fn revoking(mut self, rules: &[&str]) -> Self {
        for rule in rules {
            self.member_grants.remove(*rule);
        }
        self
    }
}

/// Who a request's token belongs to, as Nova's request context sees it.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The token carries the admin role (`context_is_admin`).
    pub admin: bool,
    pub project_id: String,
}

impl Caller {
    /// `context.can(rule)`.
    pub fn can(&self, world: &WorldState, rule: &str) -> bool {
        self.admin || MEMBER_DEFAULTS.contains(&rule) || world.nova_policy.member_grants.contains(rule)
    }

    /// Whether the caller sees a server of `project_id` by its id: a
    /// non-admin context reads the database limited to its own project, so
    /// other projects' servers are "not found" (nova `db/main/api.py`,
    /// `project_only=True`).
    pub fn sees_project(&self, project_id: &str) -> bool {
        self.admin || self.project_id == project_id
    }
}

/// Nova's `PolicyNotAuthorized` message (nova `exception.py`), answered with 403.
pub fn not_allowed_message(rule: &str) -> String {
    format!("Policy doesn't allow {rule} to be performed.")
}
