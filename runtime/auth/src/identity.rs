//! From verified claims to the `UserIdentity` functions see, as Convex
//! builds it: OIDC tokens have their standard claims mapped to camelCase
//! fields; custom JWTs keep their claims as they are, nested objects
//! flattened to dotted keys. Claims that change on every refresh (`jti`,
//! `nbf`, `fva`) and the registered ones are left out, so a refreshed token
//! is the same identity.

use capstan_protocol::UserIdentity;
use serde_json::{Map, Value};

use crate::error::AuthError;

const REGISTERED: [&str; 9] = [
    "iss", "sub", "aud", "exp", "iat", "nbf", "jti", "fva", "azp",
];

/// OIDC claim → UserIdentity field.
const STANDARD: [(&str, &str); 17] = [
    ("name", "name"),
    ("given_name", "givenName"),
    ("family_name", "familyName"),
    ("nickname", "nickname"),
    ("preferred_username", "preferredUsername"),
    ("profile", "profileUrl"),
    ("picture", "pictureUrl"),
    ("website", "websiteUrl"),
    ("email", "email"),
    ("email_verified", "emailVerified"),
    ("gender", "gender"),
    ("birthdate", "birthday"),
    ("zoneinfo", "timezone"),
    ("locale", "language"),
    ("phone_number", "phoneNumber"),
    ("phone_number_verified", "phoneNumberVerified"),
    ("updated_at", "updatedAt"),
];

pub(crate) fn user_identity(
    issuer: &str,
    claims: &Map<String, Value>,
    oidc: bool,
    expires_at: u64,
) -> Result<UserIdentity, AuthError> {
    let subject = match claims.get("sub") {
        Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
        Some(_) => {
            return Err(AuthError::InvalidClaim {
                claim: "sub",
                reason: "it must be a non-empty string".into(),
            });
        }
        None => return Err(AuthError::MissingClaim("sub")),
    };
    let token_identifier = format!("{issuer}|{subject}");
    // The identity's own fields are added by `UserIdentity::new`, which
    // keeps claims from replacing them.
    let mut object = Map::new();
    for (claim, value) in claims {
        if REGISTERED.contains(&claim.as_str()) {
            continue;
        }
        if oidc {
            if let Some((_, field)) = STANDARD.iter().find(|(c, _)| c == claim) {
                let value = match (*field, value) {
                    // Convex gives updatedAt as an RFC 3339 string.
                    ("updatedAt", Value::Number(n)) => match n.as_i64() {
                        Some(seconds) => Value::String(rfc3339(seconds)),
                        None => value.clone(),
                    },
                    _ => value.clone(),
                };
                object.insert((*field).into(), value);
                continue;
            }
            if claim == "address" {
                let formatted = match value {
                    Value::Object(address) => address.get("formatted").cloned(),
                    Value::String(_) => Some(value.clone()),
                    _ => None,
                };
                if let Some(formatted) = formatted {
                    object.insert("address".into(), formatted);
                }
                continue;
            }
            insert_custom(&mut object, claim, value.clone());
        } else {
            flatten(&mut object, claim, value);
        }
    }
    Ok(UserIdentity::new(
        token_identifier,
        issuer.to_owned(),
        subject,
        object,
        Some(expires_at),
    ))
}

/// Custom claims never replace the identity's own fields, and names that
/// Convex values cannot carry (a leading `$`) are dropped.
fn insert_custom(object: &mut Map<String, Value>, name: &str, value: Value) {
    if name.starts_with('$') || name.is_empty() || object.contains_key(name) {
        return;
    }
    object.insert(name.to_owned(), sanitize(value));
}

fn flatten(object: &mut Map<String, Value>, name: &str, value: &Value) {
    match value {
        Value::Object(inner) if !inner.is_empty() => {
            for (key, value) in inner {
                flatten(object, &format!("{name}.{key}"), value);
            }
        }
        _ => insert_custom(object, name, value.clone()),
    }
}

/// Removes object keys a Convex value cannot have, at any depth.
fn sanitize(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| !k.starts_with('$') && !k.is_empty())
                .map(|(k, v)| (k, sanitize(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(sanitize).collect()),
        other => other,
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the Unix epoch.
fn rfc3339(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oidc_claims_map_to_convex_fields() {
        let claims = serde_json::json!({
            "iss": "https://id.example.com", "sub": "u1", "aud": "app", "exp": 2, "iat": 1,
            "jti": "x", "nbf": 1, "name": "Ada Lovelace", "given_name": "Ada",
            "email": "ada@example.com", "email_verified": true, "locale": "en",
            "updated_at": 1_700_000_000, "address": {"formatted": "1 Main St"},
            "role": "admin", "$bad": 1, "org": {"id": "o1"}
        });
        let identity = user_identity(
            "https://id.example.com",
            claims.as_object().unwrap(),
            true,
            2,
        )
        .unwrap();
        let json: Value = serde_json::from_str(&identity.json).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "tokenIdentifier": "https://id.example.com|u1", "subject": "u1",
                "issuer": "https://id.example.com", "name": "Ada Lovelace", "givenName": "Ada",
                "email": "ada@example.com", "emailVerified": true, "language": "en",
                "updatedAt": "2023-11-14T22:13:20Z", "address": "1 Main St", "role": "admin",
                "org": {"id": "o1"}
            })
        );
        assert_eq!(identity.token_identifier, "https://id.example.com|u1");
    }

    #[test]
    fn custom_jwt_claims_are_kept_and_flattened() {
        let claims = serde_json::json!({
            "sub": "u|s", "name": "x", "org": {"id": "o1", "plan": {"tier": 2}}, "fva": [1, 2]
        });
        let identity = user_identity("https://a", claims.as_object().unwrap(), false, 9).unwrap();
        let json: Value = serde_json::from_str(&identity.json).unwrap();
        assert_eq!(json["name"], "x");
        assert_eq!(json["org.id"], "o1");
        assert_eq!(json["org.plan.tier"], 2);
        assert!(json.get("fva").is_none());
    }

    #[test]
    fn the_subject_is_required() {
        let claims = serde_json::json!({"iss": "https://a"});
        assert_eq!(
            user_identity("https://a", claims.as_object().unwrap(), true, 1).unwrap_err(),
            AuthError::MissingClaim("sub")
        );
    }
}
