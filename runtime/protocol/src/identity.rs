//! Who is calling a function: the identities the server establishes (from a
//! verified token, the admin key or a service key) and hands to functions.

use std::sync::Arc;

/// A verified user, in the shape of Convex's `UserIdentity`.
///
/// Equality and hashing ignore `expires_at`, so that the tokens of one
/// user's successive refreshes are the same identity (and share cached
/// query results).
#[derive(Clone, Debug)]
pub struct UserIdentity {
    /// `<issuer>|<subject>`: stable per user for a third-party issuer.
    pub token_identifier: String,
    pub subject: String,
    pub issuer: String,
    /// The whole identity as a JSON object: `tokenIdentifier`, `subject`,
    /// `issuer`, the standard OIDC fields in camelCase, and custom claims.
    pub json: String,
    /// The token's `exp`, in seconds since the Unix epoch.
    pub expires_at: Option<u64>,
}

impl UserIdentity {
    /// An identity whose JSON holds `tokenIdentifier`, `subject` and
    /// `issuer`, then `fields` (entries with those three names are left
    /// out: they cannot replace the identity's own).
    pub fn new(
        token_identifier: String,
        issuer: String,
        subject: String,
        fields: serde_json::Map<String, serde_json::Value>,
        expires_at: Option<u64>,
    ) -> UserIdentity {
        use serde_json::Value;
        let mut json = serde_json::Map::new();
        json.insert(
            "tokenIdentifier".into(),
            Value::String(token_identifier.clone()),
        );
        json.insert("subject".into(), Value::String(subject.clone()));
        json.insert("issuer".into(), Value::String(issuer.clone()));
        for (name, value) in fields {
            if !json.contains_key(&name) {
                json.insert(name, value);
            }
        }
        UserIdentity {
            token_identifier,
            subject,
            issuer,
            json: Value::Object(json).to_string(),
            expires_at,
        }
    }
}

impl PartialEq for UserIdentity {
    fn eq(&self, other: &Self) -> bool {
        self.json == other.json
    }
}

impl Eq for UserIdentity {}

impl std::hash::Hash for UserIdentity {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.json.hash(state);
    }
}

/// Who a call runs as.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Identity {
    /// No credentials.
    #[default]
    Anonymous,
    /// A verified token from a configured provider.
    User(Arc<UserIdentity>),
    /// The deployment's admin key, optionally acting as a user (the
    /// protocol's `impersonating`) for testing.
    Admin {
        impersonating: Option<Arc<UserIdentity>>,
    },
    /// A named service key.
    Service { name: String },
}

impl Identity {
    /// The user functions see through `getUserIdentity`: a verified one or
    /// the one an admin impersonates.
    pub fn user(&self) -> Option<&UserIdentity> {
        match self {
            Identity::User(user) => Some(user),
            Identity::Admin {
                impersonating: Some(user),
            } => Some(user),
            _ => None,
        }
    }

    /// Admin and service callers may call internal functions.
    pub fn is_privileged(&self) -> bool {
        matches!(self, Identity::Admin { .. } | Identity::Service { .. })
    }

    /// Names who is calling, the same for every call by the same caller
    /// and different between callers: what keys a caller's own things
    /// (a query's random seed, a mutation's stored result).
    pub fn caller_key(&self) -> String {
        match self {
            Identity::Anonymous => "anonymous".to_owned(),
            Identity::User(user) => format!("user:{}", user.token_identifier),
            Identity::Admin {
                impersonating: None,
            } => "admin".to_owned(),
            Identity::Admin {
                impersonating: Some(user),
            } => format!("admin:{}", user.token_identifier),
            Identity::Service { name } => format!("service:{name}"),
        }
    }

    /// When a user token stops being valid (seconds since the Unix epoch).
    pub fn expires_at(&self) -> Option<u64> {
        match self {
            Identity::User(user) => user.expires_at,
            _ => None,
        }
    }
}
