//! What integrators manage: API tokens, signing keys, members (the
//! integrator's own users), and the access scopes of object-bound threads.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{ApiTokenId, MemberId, OrgId, SigningKeyId};

/// Longest name of a token, key or member.
pub const MAX_NAME: usize = 100;
/// Longest external id (`sub`) of a member.
pub const MAX_EXTERNAL_ID: usize = 128;
/// Longest `externalRef.type` and `externalRef.id`.
pub const MAX_REF_TYPE: usize = 64;
pub const MAX_REF_ID: usize = 128;
/// Caps on an object-bound thread's participants and access scopes.
pub const MAX_PARTICIPANTS: usize = 200;
pub const MAX_SCOPES: usize = 20;
/// Values per `scope1`/`scope2` list, and the length of each value and of
/// a tenant.
pub const MAX_SCOPE_VALUES: usize = 50;
pub const MAX_SCOPE_VALUE: usize = 128;

/// What an API token may do.
#[derive(
    Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum TokenScope {
    /// The management API: object-bound conversations, members.
    Management,
    /// The agent REST API, acting for the organization.
    Agent,
}

impl TokenScope {
    pub fn parse(s: &str) -> Option<TokenScope> {
        match s {
            "management" => Some(TokenScope::Management),
            "agent" => Some(TokenScope::Agent),
            _ => None,
        }
    }
}

/// An API token; only the sha256 of the token is stored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiToken {
    pub id: ApiTokenId,
    pub organization_id: OrgId,
    pub name: String,
    /// Hex sha256 of the token. Never sent to a client ([`ApiTokenView`]).
    pub hash: String,
    pub scopes: Vec<TokenScope>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A key the integrator's backend signs member and visitor identity
/// tokens with (HS256). The secret is shown once, at creation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SigningKey {
    pub id: SigningKeyId,
    pub organization_id: OrgId,
    pub name: String,
    /// Never sent to a client after creation ([`SigningKeyView`]).
    pub secret: String,
    pub created_at: DateTime<Utc>,
}

/// An API token as admins list it: never the token or its hash.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiTokenView {
    pub id: ApiTokenId,
    pub name: String,
    pub scopes: Vec<TokenScope>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<ApiToken> for ApiTokenView {
    fn from(t: ApiToken) -> Self {
        ApiTokenView {
            id: t.id,
            name: t.name,
            scopes: t.scopes,
            created_at: t.created_at,
            last_used_at: t.last_used_at,
        }
    }
}

/// A signing key as admins list it: never the secret.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SigningKeyView {
    pub id: SigningKeyId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl From<SigningKey> for SigningKeyView {
    fn from(k: SigningKey) -> Self {
        SigningKeyView {
            id: k.id,
            name: k.name,
            created_at: k.created_at,
        }
    }
}

/// One of the integrator's users, known by its own id.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub id: MemberId,
    pub organization_id: OrgId,
    pub external_id: String,
    pub name: String,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: Option<DateTime<Utc>>,
}

/// Who may join an object-bound thread: members of `tenant` with at least
/// one `scope1` value and at least one `scope2` value in common.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessScope {
    pub tenant: String,
    #[serde(default)]
    pub scope1: Vec<String>,
    #[serde(default)]
    pub scope2: Vec<String>,
}

/// The scope claims of a member token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberScopes {
    pub tenant: String,
    pub scope1: Vec<String>,
    pub scope2: Vec<String>,
}

fn overlap(a: &[String], b: &[String]) -> bool {
    a.iter().any(|x| b.contains(x))
}

impl AccessScope {
    /// The rule: tenant equal AND a common `scope1` value AND a common
    /// `scope2` value. An empty list matches nothing.
    pub fn admits(&self, member: &MemberScopes) -> bool {
        self.tenant == member.tenant
            && overlap(&self.scope1, &member.scope1)
            && overlap(&self.scope2, &member.scope2)
    }
}

/// Whether any of a thread's scopes admits the member.
pub fn may_join(scopes: &[AccessScope], member: &MemberScopes) -> bool {
    scopes.iter().any(|s| s.admits(member))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn member(tenant: &str, s1: &[&str], s2: &[&str]) -> MemberScopes {
        MemberScopes {
            tenant: tenant.into(),
            scope1: v(s1),
            scope2: v(s2),
        }
    }

    fn scope(tenant: &str, s1: &[&str], s2: &[&str]) -> AccessScope {
        AccessScope {
            tenant: tenant.into(),
            scope1: v(s1),
            scope2: v(s2),
        }
    }

    #[test]
    fn the_scope_rule_needs_tenant_and_both_lists_in_common() {
        let s = scope("acme", &["logistics", "sales"], &["region-1"]);
        let cases = [
            (member("acme", &["sales"], &["region-1"]), true),
            (member("acme", &["sales", "x"], &["y", "region-1"]), true),
            (member("other", &["sales"], &["region-1"]), false),
            (member("acme", &["hr"], &["region-1"]), false),
            (member("acme", &["sales"], &["region-2"]), false),
            (member("acme", &[], &["region-1"]), false),
            (member("acme", &["sales"], &[]), false),
            (member("ACME", &["sales"], &["region-1"]), false),
            (member("", &["sales"], &["region-1"]), false),
        ];
        for (m, expected) in cases {
            assert_eq!(s.admits(&m), expected, "{m:?}");
        }
    }

    #[test]
    fn an_empty_list_in_a_scope_matches_nothing() {
        let m = member("acme", &["a"], &["b"]);
        assert!(!scope("acme", &[], &["b"]).admits(&m));
        assert!(!scope("acme", &["a"], &[]).admits(&m));
        assert!(!scope("acme", &[], &[]).admits(&member("acme", &[], &[])));
    }

    #[test]
    fn any_scope_of_a_thread_may_admit() {
        let scopes = vec![
            scope("acme", &["a"], &["b"]),
            scope("globex", &["c"], &["d"]),
        ];
        assert!(may_join(&scopes, &member("globex", &["c"], &["d"])));
        assert!(!may_join(&scopes, &member("globex", &["a"], &["b"])));
        assert!(!may_join(&[], &member("acme", &["a"], &["b"])));
    }
}
