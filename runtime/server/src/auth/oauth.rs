//! OAuth 2 and OpenID Connect sign-in, in three steps:
//!
//! 1. `signIn("github", {redirectTo?})` records a verifier (with the
//!    caller's session, if any, and where to return) and answers
//!    `{redirect, verifier}`: the browser goes to
//!    `/api/auth/signin/github?code=<verifier>`.
//! 2. That route makes `state`, a PKCE verifier and (OIDC) a `nonce`, keeps
//!    the PKCE verifier and nonce server-side on the verifier document (with
//!    the state's hash), sets a cookie holding the state, and redirects to
//!    the provider.
//! 3. `/api/auth/callback/github` (GET, or POST for Apple's `form_post`)
//!    checks the state against the cookie (the browser that started is the
//!    one finishing), finds the verifier by the state's hash, exchanges the
//!    code with the PKCE verifier, reads the profile (a verified ID token,
//!    or GitHub's user and emails APIs), creates or links the account, and
//!    redirects to the app with a one-time `?code=` that only the holder of
//!    the verifier from step 1 can exchange for tokens.
//!
//! Client ids and secrets are deployment environment variables
//! (`AUTH_GITHUB_ID`, `AUTH_GITHUB_SECRET`); an OIDC provider's issuer may
//! be overridden by `AUTH_<ID>_ISSUER`. Emails link accounts only when the
//! provider says they are verified.

use capstan_auth::built_in::{OAuthProvider, SignInProvider};
use capstan_protocol::Value;
use serde_json::{Value as Json, json};

use super::accounts::{self, Link, Profile};
use super::flows::param;
use super::records::{self, ALPHANUMERIC, object, string};
use super::tables::{SESSIONS, VERIFIERS};
use super::{AuthError, Flow};

/// How long the browser has to come back from the provider.
const ROUND_TRIP_MS: f64 = 15.0 * 60.0 * 1000.0;
/// How long the one-time code handed back to the app works.
const HAND_OFF_MS: f64 = 2.0 * 60.0 * 1000.0;

/// `{redirect, verifier}` for the browser to start signing in with
/// `provider`.
pub async fn start(flow: &Flow<'_>, provider: &str, params: &Json) -> Result<Json, AuthError> {
    let redirect_to = match params.get("redirectTo") {
        None | Some(Json::Null) => None,
        Some(Json::String(target)) => {
            // Refused now rather than after the provider's round trip.
            super::redirects::destination(flow, Some(target))?;
            Some(target.clone())
        }
        Some(_) => {
            return Err(AuthError::refused(
                "InvalidArguments",
                "`redirectTo` must be a string",
            ));
        }
    };
    let session = flow.auth.session_of(&flow.caller.identity).map(|(_, s)| s);
    let verifier = flow
        .auth
        .transact(|tx, _| {
            Ok(tx
                .insert(
                    VERIFIERS,
                    object([
                        ("sessionId", session.clone().map(Value::String)),
                        ("provider", string(provider)),
                        ("redirectTo", redirect_to.clone().map(Value::String)),
                    ]),
                )?
                .to_string())
        })
        .await?;
    let mut url = format!(
        "{}/api/auth/signin/{provider}?code={verifier}",
        flow.auth.issuer.url
    );
    if let Some(target) = redirect_to.as_deref().or(param(params, "redirectTo")) {
        url.push_str("&redirectTo=");
        url.push_str(&urlencoding(target));
    }
    Ok(json!({ "redirect": url, "verifier": verifier }))
}

/// Percent-encodes a query parameter value.
pub fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Where a provider's endpoints are and how it is spoken to.
#[derive(Clone, Debug)]
struct Endpoints {
    authorization: String,
    token: String,
    /// OIDC: the issuer and its keys, to verify ID tokens.
    oidc: Option<(String, String)>,
    scopes: String,
    /// Apple answers with a form POST.
    form_post: bool,
    /// Send the client secret in the body rather than Basic auth.
    secret_in_body: bool,
}

fn env_name(provider: &str, suffix: &str) -> String {
    format!(
        "AUTH_{}_{suffix}",
        provider.to_uppercase().replace('-', "_")
    )
}

/// The client id and secret from the deployment's environment.
fn client(flow: &Flow<'_>, provider: &str) -> Result<(String, Option<String>), AuthError> {
    let id = flow
        .environment
        .get(&env_name(provider, "ID"))
        .filter(|id| !id.is_empty())
        .cloned()
        .ok_or_else(|| {
            AuthError::internal(format!(
                "sign-in with {provider} needs its client id: set {}",
                env_name(provider, "ID")
            ))
        })?;
    Ok((
        id,
        flow.environment.get(&env_name(provider, "SECRET")).cloned(),
    ))
}

async fn endpoints(flow: &Flow<'_>, id: &str) -> Result<Endpoints, AuthError> {
    let provider = flow.config.provider(id).ok_or_else(|| {
        AuthError::refused(
            "UnknownProvider",
            format!("Provider `{id}` is not configured"),
        )
    })?;
    let scopes = |settings: &OAuthProvider, default: &str| {
        settings
            .scopes
            .as_ref()
            .map_or_else(|| default.to_owned(), |s| s.join(" "))
    };
    let (issuer, settings, default_scopes, form_post) = match provider {
        SignInProvider::Github(settings) => {
            let base = github_base(flow, id)?;
            return Ok(Endpoints {
                authorization: format!("{base}/login/oauth/authorize"),
                token: format!("{base}/login/oauth/access_token"),
                oidc: None,
                scopes: scopes(settings, "read:user user:email"),
                form_post: false,
                secret_in_body: true,
            });
        }
        SignInProvider::Google(settings) => (
            "https://accounts.google.com".to_owned(),
            settings,
            "openid email profile",
            false,
        ),
        SignInProvider::Apple(settings) => (
            "https://appleid.apple.com".to_owned(),
            settings,
            "openid name email",
            true,
        ),
        SignInProvider::Oidc(settings) => (
            flow.environment
                .get(&env_name(id, "ISSUER"))
                .cloned()
                .or_else(|| settings.issuer.clone())
                .unwrap_or_default(),
            settings,
            "openid profile email",
            false,
        ),
        _ => {
            return Err(AuthError::refused(
                "InvalidArguments",
                format!("`{id}` is not an OAuth provider"),
            ));
        }
    };
    let issuer = capstan_auth::config::normalize_issuer(&issuer).map_err(AuthError::internal)?;
    let discovery = flow
        .auth
        .fetch_json(&format!("{issuer}/.well-known/openid-configuration"))
        .await?;
    let field = |name: &str| {
        discovery[name].as_str().map(str::to_owned).ok_or_else(|| {
            AuthError::internal(format!("{issuer}'s discovery document has no {name}"))
        })
    };
    if field("issuer")?.trim_end_matches('/') != issuer {
        return Err(AuthError::internal(format!(
            "{issuer}'s discovery document names another issuer"
        )));
    }
    let methods = discovery["token_endpoint_auth_methods_supported"].as_array();
    let basic = methods.is_none_or(|m| m.iter().any(|m| m == "client_secret_basic"));
    let (authorization, token, jwks) = (
        field("authorization_endpoint")?,
        field("token_endpoint")?,
        field("jwks_uri")?,
    );
    Ok(Endpoints {
        authorization,
        token,
        oidc: Some((issuer, jwks)),
        scopes: scopes(settings, default_scopes),
        form_post,
        secret_in_body: !basic,
    })
}

fn pkce_challenge(verifier: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// The name of the cookie holding a round trip's state.
pub fn state_cookie(provider: &str) -> String {
    format!("__capstan_oauth_{provider}")
}

fn callback_url(flow: &Flow<'_>, provider: &str) -> String {
    let base = flow
        .environment
        .get("CUSTOM_AUTH_SITE_URL")
        .map(|s| s.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| flow.auth.issuer.url.clone());
    format!("{base}/api/auth/callback/{provider}")
}

/// Step 2: the provider's authorization URL and the state cookie's value.
pub async fn authorization(
    flow: &Flow<'_>,
    provider: &str,
    verifier: &str,
) -> Result<(String, String), AuthError> {
    let endpoints = endpoints(flow, provider).await?;
    let (client_id, _) = client(flow, provider)?;
    let state = records::random_text(ALPHANUMERIC, 43);
    let pkce = records::random_text(ALPHANUMERIC, 64);
    let nonce = endpoints
        .oidc
        .is_some()
        .then(|| records::random_text(ALPHANUMERIC, 32));
    let found = flow
        .auth
        .transact(|tx, now| {
            let Some(row) = records::get(tx, VERIFIERS, verifier)? else {
                return Ok(false);
            };
            let fresh = row.creation_time + ROUND_TRIP_MS >= now;
            if !fresh
                || records::text(&row, "provider") != Some(provider)
                || records::text(&row, "signature").is_some()
            {
                return Ok(false);
            }
            tx.patch(
                row.id,
                records::patch([
                    ("signature", string(records::digest(&state))),
                    ("pkce", string(&pkce)),
                    ("nonce", nonce.clone().map(Value::String)),
                ]),
            )?;
            Ok(true)
        })
        .await?;
    if !found {
        return Err(AuthError::refused("InvalidVerifier", "Invalid verifier"));
    }
    let mut url = format!(
        "{}{}response_type=code&client_id={}&redirect_uri={}&scope={}&state={state}&code_challenge={}&code_challenge_method=S256",
        endpoints.authorization,
        if endpoints.authorization.contains('?') {
            '&'
        } else {
            '?'
        },
        urlencoding(&client_id),
        urlencoding(&callback_url(flow, provider)),
        urlencoding(&endpoints.scopes),
        pkce_challenge(&pkce),
    );
    if let Some(nonce) = &nonce {
        url.push_str("&nonce=");
        url.push_str(nonce);
    }
    if endpoints.form_post {
        url.push_str("&response_mode=form_post");
    }
    Ok((url, state))
}

/// Step 3: the provider sent the browser back with `code` and `state`;
/// `cookie` is the state the browser kept. Where to send the browser (with
/// a one-time code when it worked).
pub async fn callback(
    flow: &Flow<'_>,
    provider: &str,
    query: &std::collections::HashMap<String, String>,
    cookie: Option<&str>,
) -> Result<String, AuthError> {
    let state = query.get("state").map(String::as_str).unwrap_or("");
    // The browser that started is the one finishing (no login CSRF).
    let bound = cookie.is_some_and(|c| {
        !state.is_empty() && capstan_protocol::constant_time_eq(c.as_bytes(), state.as_bytes())
    });
    let verifier = flow
        .auth
        .transact(|tx, now| {
            let Some(row) = records::find_one(
                tx,
                VERIFIERS,
                "signature",
                &[("signature", Value::from(records::digest(state)))],
            )?
            else {
                return Ok(None);
            };
            // One use: the verifier's secrets go now, whatever happens next.
            tx.patch(
                row.id,
                records::patch([("pkce", None), ("nonce", None), ("signature", None)]),
            )?;
            let fresh = row.creation_time + ROUND_TRIP_MS >= now;
            Ok((fresh && records::text(&row, "provider") == Some(provider)).then_some(row))
        })
        .await?;
    let Some(verifier) = verifier.filter(|_| bound) else {
        return Err(AuthError::refused("InvalidState", "Invalid state"));
    };
    let destination = super::redirects::destination(flow, records::text(&verifier, "redirectTo"))?;
    if let Some(error) = query.get("error") {
        return Err(AuthError::refused(
            "ProviderRefused",
            format!("the provider answered {error}"),
        ));
    }
    let code = query
        .get("code")
        .ok_or_else(|| AuthError::refused("InvalidArguments", "the provider sent no code"))?;
    let endpoints = endpoints(flow, provider).await?;
    let (client_id, secret) = client(flow, provider)?;
    let pkce = records::text(&verifier, "pkce")
        .unwrap_or_default()
        .to_owned();
    let mut form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code.clone()),
        ("redirect_uri", callback_url(flow, provider)),
        ("code_verifier", pkce),
    ];
    let mut request = flow
        .auth
        .http
        .post(&endpoints.token)
        .header("Accept", "application/json");
    match (&secret, endpoints.secret_in_body) {
        (Some(secret), true) => {
            form.push(("client_id", client_id.clone()));
            form.push(("client_secret", secret.clone()));
        }
        (Some(secret), false) => {
            request = request.basic_auth(urlencoding(&client_id), Some(urlencoding(secret)))
        }
        (None, _) => form.push(("client_id", client_id.clone())),
    }
    let tokens: Json = request
        .form(&form)
        .send()
        .await
        .map_err(|e| {
            AuthError::internal(format!(
                "the token endpoint could not be reached: {}",
                e.without_url()
            ))
        })?
        .json()
        .await
        .map_err(|_| {
            AuthError::internal("the token endpoint answered something other than JSON")
        })?;
    if let Some(error) = tokens["error"].as_str() {
        return Err(AuthError::refused(
            "ProviderRefused",
            format!("the provider refused the code: {error}"),
        ));
    }
    let (account_id, mut profile) = match &endpoints.oidc {
        Some((issuer, jwks)) => {
            let id_token = tokens["id_token"]
                .as_str()
                .ok_or_else(|| AuthError::internal("the provider sent no ID token"))?;
            let claims = flow
                .auth
                .verify_id_token(id_token, issuer, jwks, &client_id)
                .await?;
            if claims["nonce"].as_str() != records::text(&verifier, "nonce") {
                return Err(AuthError::refused(
                    "InvalidNonce",
                    "the ID token's nonce does not match",
                ));
            }
            oidc_profile(&claims, query.get("user"))?
        }
        None => {
            let access = tokens["access_token"]
                .as_str()
                .ok_or_else(|| AuthError::internal("the provider sent no access token"))?;
            github_profile(flow, provider, access).await?
        }
    };
    let extra = super::hooks::user_fields(flow, provider, "oauth", &profile, &Json::Null).await?;
    profile.fields.extend(extra);
    let hand_off = records::random_text(ALPHANUMERIC, super::codes::LINK_CODE_LENGTH);
    let verifier_id = verifier.id.to_string();
    let (user, created) = flow
        .auth
        .transact(|tx, now| {
            // Signed in when it started: the provider joins that user.
            let caller_user = match records::text(&verifier, "sessionId") {
                Some(session) => records::get(tx, SESSIONS, session)?
                    .and_then(|s| records::text(&s, "userId").map(str::to_owned)),
                None => None,
            };
            let mut created = false;
            let account = match accounts::find(tx, provider, &account_id)? {
                Some(account) => {
                    if let Some(user) = records::text(&account, "userId").map(str::to_owned) {
                        // The provider's name and picture stay current.
                        accounts::upsert_user(
                            tx,
                            Some(user),
                            &Profile {
                                email: None,
                                phone: None,
                                ..profile.clone()
                            },
                            now,
                        )?;
                    }
                    account
                }
                None => {
                    let link = match &caller_user {
                        Some(user) => Link::ToUser(user.clone()),
                        None => Link::ByVerifiedContact,
                    };
                    created = true;
                    accounts::create(tx, provider, &account_id, None, &profile, link, now)?.0
                }
            };
            let user = records::text(&account, "userId")
                .unwrap_or_default()
                .to_owned();
            super::codes::store_code(
                tx,
                &account,
                provider,
                &hand_off,
                now + HAND_OFF_MS,
                (None, None),
                Some(&verifier_id),
            )?;
            if let Some(row) = tx.get(verifier.id)? {
                tx.delete(row.id)?;
            }
            Ok((user, created))
        })
        .await?;
    super::hooks::after_user(flow, &user, provider, "oauth", created).await?;
    Ok(super::redirects::with_code(&destination, &hand_off))
}

/// The account id and profile in verified ID-token claims (and Apple's
/// `user` form field, sent on the first sign-in only).
fn oidc_profile(
    claims: &Json,
    apple_user: Option<&String>,
) -> Result<(String, Profile), AuthError> {
    let sub = claims["sub"]
        .as_str()
        .ok_or_else(|| AuthError::internal("the ID token has no sub"))?
        .to_owned();
    let verified = match &claims["email_verified"] {
        Json::Bool(b) => *b,
        Json::String(s) => s == "true",
        _ => false,
    };
    let mut fields = capstan_protocol::Object::new();
    let apple_name = apple_user
        .and_then(|u| serde_json::from_str::<Json>(u).ok())
        .and_then(|u| {
            let first = u["name"]["firstName"].as_str().unwrap_or("");
            let last = u["name"]["lastName"].as_str().unwrap_or("");
            let name = format!("{first} {last}").trim().to_owned();
            (!name.is_empty()).then_some(name)
        });
    let name = claims["name"]
        .as_str()
        .or(claims["preferred_username"].as_str())
        .or(claims["nickname"].as_str())
        .map(str::to_owned)
        .or(apple_name);
    if let Some(name) = name {
        fields.insert("name".into(), Value::String(name));
    }
    if let Some(picture) = claims["picture"].as_str() {
        fields.insert("image".into(), Value::from(picture));
    }
    let email = claims["email"]
        .as_str()
        .and_then(|e| accounts::normalize_email(e).ok());
    Ok((
        sub,
        Profile {
            email,
            email_verified: verified,
            fields,
            ..Default::default()
        },
    ))
}

/// GitHub's user, with its primary email if GitHub verified it.
/// GitHub's web address: github.com, or a GitHub Enterprise Server's from
/// `AUTH_<ID>_ISSUER`.
fn github_base(flow: &Flow<'_>, id: &str) -> Result<String, AuthError> {
    match flow.environment.get(&env_name(id, "ISSUER")) {
        Some(base) if !base.is_empty() => {
            capstan_auth::config::normalize_issuer(base).map_err(AuthError::internal)
        }
        _ => Ok("https://github.com".to_owned()),
    }
}

/// GitHub's REST API: api.github.com, or an Enterprise Server's `/api/v3`.
fn github_api(base: &str) -> String {
    if base == "https://github.com" {
        "https://api.github.com".to_owned()
    } else {
        format!("{base}/api/v3")
    }
}

async fn github_profile(
    flow: &Flow<'_>,
    provider: &str,
    access: &str,
) -> Result<(String, Profile), AuthError> {
    let api = github_api(&github_base(flow, provider)?);
    let get = |path: &str| {
        flow.auth
            .http
            .get(format!("{api}{path}"))
            .bearer_auth(access)
            .header("Accept", "application/vnd.github+json")
            .header("User-Agent", "capstan")
            .send()
    };
    let user: Json = get("/user")
        .await
        .map_err(|e| AuthError::internal(format!("GitHub's user API: {}", e.without_url())))?
        .json()
        .await
        .map_err(|_| AuthError::internal("GitHub's user API answered something other than JSON"))?;
    let id = match &user["id"] {
        Json::Number(n) => n.to_string(),
        Json::String(s) => s.clone(),
        _ => return Err(AuthError::internal("GitHub's user has no id")),
    };
    let emails: Json = match get("/user/emails").await {
        Ok(response) => response.json().await.unwrap_or(Json::Null),
        Err(_) => Json::Null,
    };
    let primary = emails.as_array().and_then(|list| {
        list.iter()
            .find(|e| e["primary"] == true && e["verified"] == true)
            .and_then(|e| e["email"].as_str())
    });
    let mut fields = capstan_protocol::Object::new();
    if let Some(name) = user["name"].as_str().or(user["login"].as_str()) {
        fields.insert("name".into(), Value::from(name));
    }
    if let Some(avatar) = user["avatar_url"].as_str() {
        fields.insert("image".into(), Value::from(avatar));
    }
    Ok((
        id,
        Profile {
            email: primary.and_then(|e| accounts::normalize_email(e).ok()),
            email_verified: primary.is_some(),
            fields,
            ..Default::default()
        },
    ))
}

impl super::SignIn {
    /// A JSON document from a provider (discovery, JWKS), bounded in time
    /// and size.
    pub(crate) async fn fetch_json(&self, url: &str) -> Result<Json, AuthError> {
        let response = self
            .http
            .get(url)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| {
                AuthError::internal(format!("{url} could not be reached: {}", e.without_url()))
            })?;
        if !response.status().is_success() {
            return Err(AuthError::internal(format!(
                "{url} answered {}",
                response.status()
            )));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| AuthError::internal(format!("{url}: {}", e.without_url())))?;
        if bytes.len() > 1 << 20 {
            return Err(AuthError::internal(format!("{url} sent more than 1 MiB")));
        }
        serde_json::from_slice(&bytes)
            .map_err(|_| AuthError::internal(format!("{url} sent something other than JSON")))
    }

    /// The claims of an ID token from `issuer` for `audience`, signature,
    /// issuer, audience and expiry checked.
    async fn verify_id_token(
        &self,
        token: &str,
        issuer: &str,
        jwks_uri: &str,
        audience: &str,
    ) -> Result<Json, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| AuthError::internal(format!("the ID token is malformed: {e}")))?;
        let algorithm = match header.alg {
            alg @ (jsonwebtoken::Algorithm::RS256
            | jsonwebtoken::Algorithm::ES256
            | jsonwebtoken::Algorithm::EdDSA) => alg,
            other => {
                return Err(AuthError::internal(format!(
                    "the ID token's algorithm {other:?} is not accepted"
                )));
            }
        };
        let jwks: jsonwebtoken::jwk::JwkSet =
            serde_json::from_value(self.fetch_json(jwks_uri).await?)
                .map_err(|e| AuthError::internal(format!("{issuer}'s JWKS is invalid: {e}")))?;
        let key = match &header.kid {
            Some(kid) => jwks.find(kid),
            None if jwks.keys.len() == 1 => jwks.keys.first(),
            None => None,
        }
        .ok_or_else(|| AuthError::internal("no key of the provider's JWKS signed the ID token"))?;
        let key = jsonwebtoken::DecodingKey::from_jwk(key)
            .map_err(|e| AuthError::internal(format!("the provider's key is unusable: {e}")))?;
        let mut validation = jsonwebtoken::Validation::new(algorithm);
        validation.set_issuer(&[issuer, &format!("{issuer}/")]);
        validation.set_audience(&[audience]);
        validation.leeway = 30;
        let data = jsonwebtoken::decode::<Json>(token, &key, &validation).map_err(|e| {
            AuthError::refused("InvalidIdToken", format!("the ID token is not valid: {e}"))
        })?;
        Ok(data.claims)
    }
}
