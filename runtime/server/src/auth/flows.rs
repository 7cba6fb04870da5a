//! `auth:signIn` and `auth:signOut`, in Convex Auth's decision order:
//! refresh, then a code exchange, then the named provider's own steps.

use capstan_auth::built_in::SignInProvider;
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::sessions::{self, Lifetimes, Refreshed};
use super::{AuthError, Flow, accounts, codes, oauth, password};

/// `auth:signIn`'s arguments.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SignInArgs {
    provider: Option<String>,
    params: Option<Json>,
    verifier: Option<String>,
    refresh_token: Option<String>,
    /// Only logged by Convex Auth.
    #[serde(default)]
    #[allow(dead_code)]
    called_by: Option<String>,
}

/// A string parameter of a sign-in step.
pub fn param<'p>(params: &'p Json, name: &str) -> Option<&'p str> {
    params.get(name).and_then(Json::as_str)
}

pub async fn sign_in(flow: &Flow<'_>, args: &str) -> Result<String, AuthError> {
    let args: SignInArgs = serde_json::from_str(args).map_err(|e| {
        AuthError::refused(
            "InvalidArguments",
            format!("auth:signIn: invalid arguments: {e}"),
        )
    })?;
    let params = args.params.unwrap_or(Json::Null);
    if !(params.is_null() || params.is_object()) {
        return Err(AuthError::refused(
            "InvalidArguments",
            "`params` must be an object",
        ));
    }
    let code = param(&params, "code");
    let Some(provider_id) = args.provider else {
        if let Some(token) = args.refresh_token {
            return refresh(flow, &token).await;
        }
        if let Some(code) = code {
            // Every failure of the code exchange is `{tokens: null}`, as
            // the React client expects (it runs this for any `?code=`).
            let signed_in = match codes::verify_and_sign_in(
                flow,
                code,
                &params,
                None,
                args.verifier.as_deref(),
            )
            .await
            {
                Ok(signed_in) => signed_in,
                Err(AuthError::Refused { .. }) => None,
                Err(other) => return Err(other),
            };
            return Ok(tokens_or_null(flow, signed_in).await?.to_string());
        }
        return Err(AuthError::refused(
            "InvalidArguments",
            "Cannot sign in: Missing `provider`, `params.code` or `refreshToken`",
        ));
    };
    let Some(provider) = flow.config.provider(&provider_id) else {
        let available = flow
            .config
            .providers
            .keys()
            .map(|id| format!("`{id}`"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(AuthError::refused(
            "UnknownProvider",
            format!(
                "Provider `{provider_id}` is not configured, available providers are {available}."
            ),
        ));
    };
    let result = match provider {
        SignInProvider::Password(settings) => {
            let signed_in = password::sign_in(flow, &provider_id, settings, &params).await?;
            tokens_or_null(flow, signed_in).await?
        }
        SignInProvider::Email(settings) | SignInProvider::Phone(settings) => {
            let phone = matches!(provider, SignInProvider::Phone(_));
            match code {
                Some(code) => {
                    let signed_in =
                        codes::verify_and_sign_in(flow, code, &params, Some(&provider_id), None)
                            .await?
                            .ok_or_else(|| {
                                AuthError::refused("InvalidCode", "Could not verify code")
                            })?;
                    tokens(flow, signed_in).await?
                }
                None => {
                    codes::send_sign_in_code(flow, &provider_id, settings, phone, &params).await?;
                    json!({ "started": true })
                }
            }
        }
        SignInProvider::Anonymous {} => {
            let signed_in = anonymous(flow, &provider_id, &params).await?;
            tokens(flow, signed_in).await?
        }
        SignInProvider::Github(_)
        | SignInProvider::Google(_)
        | SignInProvider::Apple(_)
        | SignInProvider::Oidc(_) => match code {
            Some(code) => {
                let signed_in = codes::verify_and_sign_in(
                    flow,
                    code,
                    &params,
                    Some(&provider_id),
                    args.verifier.as_deref(),
                )
                .await?;
                tokens_or_null(flow, signed_in).await?
            }
            None => oauth::start(flow, &provider_id, &params).await?,
        },
    };
    Ok(result.to_string())
}

/// `auth:signOut`: ends the caller's session, if it has one of ours.
pub async fn sign_out(flow: &Flow<'_>) -> Result<(), AuthError> {
    let Some((_, session)) = flow.auth.session_of(&flow.caller.identity) else {
        return Ok(());
    };
    flow.auth
        .transact(|tx, _| sessions::end(tx, &session).map(|_| ()))
        .await
}

/// A signed-in user and their new session.
#[derive(Debug)]
pub struct SignedIn {
    pub user: String,
    pub session: String,
    pub refresh: String,
}

pub fn lifetimes(flow: &Flow<'_>) -> Lifetimes {
    Lifetimes {
        total_ms: flow.config.session.total_seconds as f64 * 1000.0,
        inactive_ms: flow.config.session.inactive_seconds as f64 * 1000.0,
    }
}

/// Starts a session for `user` in `tx`: the caller's current session, if
/// any, ends first (a sign-in never continues someone's session).
pub fn start_session(
    flow: &Flow<'_>,
    tx: &mut super::records::Tx,
    user: &str,
    now: f64,
) -> Result<SignedIn, AuthError> {
    if let Some((_, current)) = flow.auth.session_of(&flow.caller.identity) {
        sessions::end(tx, &current)?;
    }
    let (session, refresh) = sessions::create(tx, user, now, lifetimes(flow))?;
    Ok(SignedIn {
        user: user.to_owned(),
        session,
        refresh,
    })
}

/// `{tokens: {token, refreshToken}}` for a new session, if the app's
/// `beforeSessionCreation` hook lets it be (otherwise it ends unused).
pub async fn tokens(flow: &Flow<'_>, signed_in: SignedIn) -> Result<Json, AuthError> {
    if let Err(refusal) = super::hooks::check_session(flow, &signed_in.user).await {
        let session = signed_in.session.clone();
        flow.auth
            .transact(|tx, _| sessions::end(tx, &session).map(|_| ()))
            .await?;
        return Err(refusal);
    }
    let token = access_token(flow, &signed_in.user, &signed_in.session).await?;
    Ok(json!({ "tokens": { "token": token, "refreshToken": signed_in.refresh } }))
}

async fn tokens_or_null(flow: &Flow<'_>, signed_in: Option<SignedIn>) -> Result<Json, AuthError> {
    match signed_in {
        Some(signed_in) => tokens(flow, signed_in).await,
        None => Ok(json!({ "tokens": null })),
    }
}

/// A signed access token for `user`'s `session`, with the app's custom
/// claims.
async fn access_token(flow: &Flow<'_>, user: &str, session: &str) -> Result<String, AuthError> {
    let claims = super::hooks::custom_claims(flow, user, session).await?;
    let issuer = capstan_auth::Issuer {
        audience: flow.config.token.audience.clone(),
        ..flow.auth.issuer.clone()
    };
    issuer
        .sign(
            &format!("{user}|{session}"),
            claims,
            flow.auth.clock.unix_seconds(),
            flow.config.token.lifetime_seconds,
        )
        .map_err(|e| AuthError::internal(e.to_string()))
}

/// Exchanges a refresh token: new tokens, or `{tokens: null}` when it is
/// not (or no longer) valid.
async fn refresh(flow: &Flow<'_>, token: &str) -> Result<String, AuthError> {
    let Some((id, secret)) = token.split_once('|') else {
        return Err(AuthError::refused(
            "InvalidRefreshToken",
            "Invalid refresh token",
        ));
    };
    let lifetimes = lifetimes(flow);
    let refreshed = flow
        .auth
        .transact(|tx, now| sessions::refresh(tx, (id, secret), now, lifetimes))
        .await?;
    let result = match refreshed {
        Refreshed::Tokens {
            user,
            session,
            refresh,
        } => {
            // A user the app has since refused (banned) is signed out.
            if super::hooks::check_session(flow, &user).await.is_err() {
                flow.auth
                    .transact(|tx, _| sessions::end(tx, &session).map(|_| ()))
                    .await?;
                return Ok(json!({ "tokens": null }).to_string());
            }
            json!({ "tokens": {
                "token": access_token(flow, &user, &session).await?,
                "refreshToken": refresh,
            } })
        }
        Refreshed::Invalid => json!({ "tokens": null }),
    };
    Ok(result.to_string())
}

/// A new anonymous user, with an account keyed by a random id.
async fn anonymous(flow: &Flow<'_>, provider: &str, params: &Json) -> Result<SignedIn, AuthError> {
    let account_id = super::records::secret();
    let mut profile = accounts::Profile {
        fields: [(
            "isAnonymous".to_owned(),
            capstan_protocol::Value::Boolean(true),
        )]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    let extra = super::hooks::user_fields(flow, provider, "anonymous", &profile, params).await?;
    profile.fields.extend(extra);
    let signed_in = flow
        .auth
        .transact(|tx, now| {
            let (_, user) = accounts::create(
                tx,
                provider,
                &account_id,
                None,
                &profile,
                accounts::Link::No,
                now,
            )?;
            start_session(flow, tx, &user, now)
        })
        .await?;
    super::hooks::after_user(flow, &signed_in.user, provider, "anonymous", true).await?;
    Ok(signed_in)
}
