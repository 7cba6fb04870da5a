//! Built-in auth end to end over HTTP, the way `@convex-dev/auth`'s client
//! and its Next.js helpers call it: `auth:signIn` for each provider,
//! refresh-token rotation and reuse, sign-out, the identity functions see,
//! the issuer's keys (published, rotated, kept over a restart), and the
//! failed-attempt budget.

use std::time::Duration;

use base64::Engine as _;
use capstan_protocol::ManualClock;
use serde_json::{Value, json};

use crate::common::*;

fn auth_config(providers: Value) -> Value {
    json!({"auth": {"builtIn": {"providers": providers}}})
}

fn password_config() -> Value {
    auth_config(json!({
        "password": {"type": "password", "reset": {"type": "email"}},
        "anonymous": {"type": "anonymous"},
        "email": {"type": "email"},
        "magic": {"type": "email", "link": true},
    }))
}

struct Auth {
    server: TestServer,
    clock: ManualClock,
    _dir: tempfile::TempDir,
}

impl Auth {
    async fn start(app_config: Value) -> anyhow::Result<Auth> {
        let dir = temp_dir();
        Auth::start_in(dir, app_config).await
    }

    async fn start_in(dir: tempfile::TempDir, app_config: Value) -> anyhow::Result<Auth> {
        let clock = ManualClock::new();
        let mut config = config(dir.path());
        config.clock = clock.clock();
        config.dev_outbox = true;
        let server = TestServer::spawn_with(config).await?;
        let (status, body) = server.deploy_with(&[test_guest()], app_config).await?;
        anyhow::ensure!(status == 200, "deploy: {body}");
        Ok(Auth {
            server,
            clock,
            _dir: dir,
        })
    }

    /// `auth:signIn` over HTTP as `token`'s holder (or anonymously).
    async fn sign_in(&self, args: Value, token: Option<&str>) -> anyhow::Result<Value> {
        let (status, body) = self
            .server
            .call_as(
                "action",
                "auth:signIn",
                args,
                token.map(|t| format!("Bearer {t}")),
            )
            .await?;
        anyhow::ensure!(status == 200, "{status} {body}");
        Ok(body)
    }

    /// The value of a successful `auth:signIn`.
    async fn ok(&self, args: Value, token: Option<&str>) -> anyhow::Result<Value> {
        let body = self.sign_in(args.clone(), token).await?;
        anyhow::ensure!(body["status"] == "success", "{args}: {body}");
        Ok(body["value"].clone())
    }

    /// The error message of a failed `auth:signIn`.
    async fn refused(&self, args: Value, token: Option<&str>) -> anyhow::Result<(String, Value)> {
        let body = self.sign_in(args.clone(), token).await?;
        anyhow::ensure!(body["status"] == "error", "{args} should fail: {body}");
        Ok((
            body["errorMessage"].as_str().unwrap_or("").to_owned(),
            body["errorData"].clone(),
        ))
    }

    async fn whoami(&self, token: &str) -> anyhow::Result<Value> {
        let (status, body) = self
            .server
            .call_as(
                "query",
                "auth:whoami",
                json!({}),
                Some(format!("Bearer {token}")),
            )
            .await?;
        anyhow::ensure!(status == 200, "{status} {body}");
        Ok(body)
    }

    async fn set_env(&self, name: &str, value: &str) -> anyhow::Result<()> {
        self.server.set_env(name, value).await
    }

    fn outbox(&self) -> Vec<Value> {
        std::fs::read_to_string(self._dir.path().join("dev_outbox.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// The code in the last message to `to`.
    fn last_code(&self, to: &str) -> anyhow::Result<String> {
        let message = self
            .outbox()
            .into_iter()
            .rev()
            .find(|m| m["to"] == to)
            .ok_or_else(|| anyhow::anyhow!("no message to {to}"))?;
        let text = message["text"].as_str().unwrap_or("");
        let code = match text.split("code=").nth(1) {
            Some(rest) => rest
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect(),
            None => text
                .split(|c: char| !c.is_ascii_digit())
                .find(|word| word.len() >= 6)
                .unwrap_or("")
                .to_owned(),
        };
        anyhow::ensure!(!code.is_empty(), "no code in {text:?}");
        Ok(code)
    }
}

fn tokens(value: &Value) -> (String, String) {
    (
        value["tokens"]["token"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        value["tokens"]["refreshToken"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap_or("");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap_or_default(),
    )
    .unwrap_or(Value::Null)
}

fn header(token: &str) -> Value {
    let header = token.split('.').next().unwrap_or("");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap_or_default(),
    )
    .unwrap_or(Value::Null)
}

fn sign_up(email: &str, password: &str) -> Value {
    json!({"provider": "password", "params": {"flow": "signUp", "email": email, "password": password}})
}

fn sign_in(email: &str, password: &str) -> Value {
    json!({"provider": "password", "params": {"flow": "signIn", "email": email, "password": password}})
}

#[tokio::test]
async fn password_sign_up_sign_in_refresh_and_sign_out() -> anyhow::Result<()> {
    let auth = Auth::start(password_config()).await?;
    let (token, refresh) = tokens(
        &auth
            .ok(sign_up("Ana@Example.com", "correct horse"), None)
            .await?,
    );
    let issued = claims(&token);
    let sub = issued["sub"].as_str().unwrap_or_default().to_owned();
    let (user, session) = sub.split_once('|').expect("sub is user|session");
    assert_eq!(issued["iss"], auth.server.server.url());
    assert_eq!(issued["aud"], "convex");
    assert_eq!(
        issued["exp"].as_u64().unwrap() - issued["iat"].as_u64().unwrap(),
        3600
    );
    assert!(header(&token)["kid"].is_string(), "tokens name their key");

    // Functions see the user, as `get_auth_user_id` gives it.
    let me = auth.whoami(&token).await?;
    assert_eq!(me["value"]["kind"], "user", "{me}");
    assert_eq!(me["value"]["userId"], user);
    assert_eq!(me["value"]["sessionId"], session);
    let (_, is) = auth
        .server
        .call_as(
            "query",
            "auth:isAuthenticated",
            json!({}),
            Some(format!("Bearer {token}")),
        )
        .await?;
    assert_eq!(is["value"], true);
    let (_, is) = auth
        .server
        .call("query", "auth:isAuthenticated", json!({}))
        .await?;
    assert_eq!(is["value"], false);

    // The email is one account whatever its case.
    let again = auth
        .ok(sign_in("ana@example.com", "correct horse"), None)
        .await?;
    assert_eq!(claims_user(&again), user);

    // An unknown account and a wrong password: the same answer.
    let (unknown, _) = auth
        .refused(sign_in("nobody@example.com", "correct horse"), None)
        .await?;
    let (wrong, data) = auth
        .refused(sign_in("ana@example.com", "wrong horse"), None)
        .await?;
    assert_eq!(unknown, wrong);
    assert_eq!(data["code"], "InvalidCredentials");
    let (exists, _) = auth
        .refused(sign_up("ana@example.com", "another one"), None)
        .await?;
    assert!(exists.contains("already exists"), "{exists}");
    let (short, _) = auth
        .refused(sign_up("bo@example.com", "short"), None)
        .await?;
    assert!(short.contains("at least 8"), "{short}");

    // Refresh: a new pair for the same session.
    let refreshed = auth.ok(json!({"refreshToken": refresh}), None).await?;
    let (token2, refresh2) = tokens(&refreshed);
    assert_eq!(claims_user(&refreshed), user);
    assert!(claims(&token2)["sub"].as_str().unwrap().ends_with(session));
    assert_ne!(refresh2, refresh);
    // Two tabs refreshing at once both get tokens.
    let raced = auth.ok(json!({"refreshToken": refresh}), None).await?;
    assert!(raced["tokens"].is_object(), "{raced}");

    // Sign out: the session's refresh tokens stop working.
    let (status, body) = auth
        .server
        .call_as(
            "action",
            "auth:signOut",
            json!({}),
            Some(format!("Bearer {token2}")),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success", "{body}");
    let after = auth.ok(json!({"refreshToken": refresh2}), None).await?;
    assert_eq!(after, json!({"tokens": null}));
    // A malformed refresh token is an error, as with Convex Auth.
    auth.refused(json!({"refreshToken": "nonsense"}), None)
        .await?;
    auth.server.stop().await
}

fn claims_user(value: &Value) -> String {
    let (token, _) = tokens(value);
    claims(&token)["sub"]
        .as_str()
        .and_then(|sub| sub.split('|').next())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn functions_load_the_current_user_and_end_sessions() -> anyhow::Result<()> {
    let auth = Auth::start(password_config()).await?;
    let (token, refresh) = tokens(
        &auth
            .ok(sign_up("pia@example.com", "correct horse"), None)
            .await?,
    );
    let bearer = Some(format!("Bearer {token}"));
    let (_, me) = auth
        .server
        .call_as("query", "auth:me", json!({}), bearer.clone())
        .await?;
    assert_eq!(me["value"]["email"], "pia@example.com", "{me}");
    assert!(me["value"]["_id"].is_string(), "{me}");
    let (_, ended) = auth
        .server
        .call_as(
            "mutation",
            "auth:sign_out_everywhere",
            json!({}),
            bearer.clone(),
        )
        .await?;
    assert_eq!(ended["value"], 1.0, "{ended}");
    // The token is still a valid token, but its session is over.
    let (_, me) = auth
        .server
        .call_as("query", "auth:me", json!({}), bearer)
        .await?;
    assert_eq!(me["value"], Value::Null, "{me}");
    assert_eq!(
        auth.ok(json!({"refreshToken": refresh}), None).await?,
        json!({"tokens": null})
    );
    auth.server.stop().await
}

#[tokio::test]
async fn the_apps_hooks_fill_users_refuse_sessions_and_add_claims() -> anyhow::Result<()> {
    let mut config = password_config();
    config["auth"]["builtIn"]["hooks"] = json!({
        "userFields": "auth_hooks:user_fields",
        "afterUserCreatedOrUpdated": "auth_hooks:after_user",
        "beforeSessionCreation": "auth_hooks:before_session",
        "customClaims": "auth_hooks:claims",
    });
    let auth = Auth::start(config).await?;
    let mut args = sign_up("quinn@example.com", "correct horse");
    args["params"]["name"] = json!("Quinn");
    let (token, refresh) = tokens(&auth.ok(args, None).await?);
    assert_eq!(claims(&token)["plan"], "pro");
    let (_, me) = auth
        .server
        .call_as(
            "query",
            "auth:me",
            json!({}),
            Some(format!("Bearer {token}")),
        )
        .await?;
    assert_eq!(me["value"]["name"], "Quinn", "{me}");
    assert!(me["value"].get("password").is_none(), "{me}");
    let (refreshed, _) = tokens(&auth.ok(json!({"refreshToken": refresh}), None).await?);
    assert_eq!(
        claims(&refreshed)["plan"],
        "pro",
        "claims come with every token"
    );
    // A banned user signs up (their account exists) but gets no session.
    let (message, _) = auth
        .refused(sign_up("rex@banned.example", "correct horse"), None)
        .await?;
    assert!(message.contains("banned"), "{message}");
    let (message, _) = auth
        .refused(sign_in("rex@banned.example", "correct horse"), None)
        .await?;
    assert!(message.contains("banned"), "{message}");
    // Two users were made.
    let (_, count) = auth
        .server
        .call_as(
            "mutation",
            "api:increment",
            json!({"name": "users_created"}),
            Some(auth.server.admin()),
        )
        .await?;
    assert_eq!(
        count["value"],
        json!({"$integer": base64_int(3)}),
        "{count}"
    );
    auth.server.stop().await
}

fn base64_int(n: i64) -> String {
    base64::engine::general_purpose::STANDARD.encode(n.to_le_bytes())
}

#[tokio::test]
async fn a_refresh_token_used_again_after_the_grace_window_ends_its_session() -> anyhow::Result<()>
{
    let auth = Auth::start(password_config()).await?;
    let (_, first) = tokens(
        &auth
            .ok(sign_up("cy@example.com", "correct horse"), None)
            .await?,
    );
    let (_, second) = tokens(&auth.ok(json!({"refreshToken": first}), None).await?);
    auth.clock.advance(Duration::from_secs(11));
    // The old token again: someone else has a copy.
    assert_eq!(
        auth.ok(json!({"refreshToken": first}), None).await?,
        json!({"tokens": null})
    );
    // And the session is over for its holder too.
    assert_eq!(
        auth.ok(json!({"refreshToken": second}), None).await?,
        json!({"tokens": null})
    );
    // A forged secret does nothing, and ends nothing.
    let (_, third) = tokens(
        &auth
            .ok(sign_in("cy@example.com", "correct horse"), None)
            .await?,
    );
    let (id, _) = third.split_once('|').unwrap();
    assert_eq!(
        auth.ok(json!({"refreshToken": format!("{id}|forged")}), None)
            .await?,
        json!({"tokens": null})
    );
    assert!(auth.ok(json!({"refreshToken": third}), None).await?["tokens"].is_object());
    auth.server.stop().await
}

#[tokio::test]
async fn signing_in_while_signed_in_starts_a_new_session() -> anyhow::Result<()> {
    let auth = Auth::start(password_config()).await?;
    let (token, refresh) = tokens(
        &auth
            .ok(sign_up("di@example.com", "correct horse"), None)
            .await?,
    );
    let (token2, _) = tokens(
        &auth
            .ok(sign_in("di@example.com", "correct horse"), Some(&token))
            .await?,
    );
    let session = |t: &str| {
        claims(t)["sub"]
            .as_str()
            .unwrap()
            .split('|')
            .nth(1)
            .unwrap()
            .to_owned()
    };
    assert_ne!(session(&token), session(&token2));
    // The old session ended with the new sign-in.
    assert_eq!(
        auth.ok(json!({"refreshToken": refresh}), None).await?,
        json!({"tokens": null})
    );
    auth.server.stop().await
}

#[tokio::test]
async fn password_guessing_hits_the_failed_attempt_budget() -> anyhow::Result<()> {
    let auth = Auth::start(password_config()).await?;
    auth.ok(sign_up("eve@example.com", "correct horse"), None)
        .await?;
    for _ in 0..10 {
        let (_, data) = auth
            .refused(sign_in("eve@example.com", "guess guess"), None)
            .await?;
        assert_eq!(data["code"], "InvalidCredentials");
    }
    let (_, data) = auth
        .refused(sign_in("eve@example.com", "correct horse"), None)
        .await?;
    assert_eq!(
        data["code"], "TooManyFailedAttempts",
        "even the right password waits"
    );
    // The budget refills: one attempt every six minutes.
    auth.clock.advance(Duration::from_secs(6 * 60 + 1));
    auth.ok(sign_in("eve@example.com", "correct horse"), None)
        .await?;
    auth.server.stop().await
}

#[tokio::test]
async fn an_anonymous_user_keeps_their_id_when_they_sign_up() -> anyhow::Result<()> {
    let auth = Auth::start(password_config()).await?;
    let anonymous = auth.ok(json!({"provider": "anonymous"}), None).await?;
    let (token, _) = tokens(&anonymous);
    let user = claims_user(&anonymous);
    let upgraded = auth
        .ok(sign_up("fay@example.com", "correct horse"), Some(&token))
        .await?;
    assert_eq!(claims_user(&upgraded), user);
    let again = auth
        .ok(sign_in("fay@example.com", "correct horse"), None)
        .await?;
    assert_eq!(claims_user(&again), user);
    auth.server.stop().await
}

#[tokio::test]
async fn email_codes_are_single_use_and_bound_to_their_address() -> anyhow::Result<()> {
    let auth = Auth::start(password_config()).await?;
    let started = auth
        .ok(
            json!({"provider": "email", "params": {"email": "gus@example.com"}}),
            None,
        )
        .await?;
    assert_eq!(started, json!({"started": true}));
    let code = auth.last_code("gus@example.com")?;
    assert_eq!(code.len(), 8);
    // Another address cannot use it.
    auth.ok(
        json!({"provider": "email", "params": {"email": "hal@example.com"}}),
        None,
    )
    .await?;
    let (message, _) = auth
        .refused(
            json!({"provider": "email", "params": {"email": "hal@example.com", "code": code}}),
            None,
        )
        .await?;
    assert_eq!(message, "Could not verify code");
    let signed_in = auth
        .ok(
            json!({"provider": "email", "params": {"email": "gus@example.com", "code": code}}),
            None,
        )
        .await?;
    assert!(signed_in["tokens"]["token"].is_string(), "{signed_in}");
    // Once only.
    auth.refused(
        json!({"provider": "email", "params": {"email": "gus@example.com", "code": code}}),
        None,
    )
    .await?;
    auth.server.stop().await
}

#[tokio::test]
async fn magic_links_sign_in_through_the_code_exchange() -> anyhow::Result<()> {
    let auth = Auth::start(password_config()).await?;
    auth.set_env("SITE_URL", "https://app.example.com").await?;
    auth.ok(
        json!({"provider": "magic", "params": {"email": "ida@example.com", "redirectTo": "/welcome"}}),
        None,
    )
    .await?;
    let message = auth.outbox().pop().expect("a message");
    let text = message["text"].as_str().unwrap();
    assert!(
        text.contains("https://app.example.com/welcome?code="),
        "{text}"
    );
    let code = auth.last_code("ida@example.com")?;
    assert_eq!(code.len(), 32);
    // The React client finds `?code=` and calls signIn without a provider.
    let signed_in = auth.ok(json!({"params": {"code": code}}), None).await?;
    assert!(signed_in["tokens"]["token"].is_string(), "{signed_in}");
    assert_eq!(
        auth.ok(json!({"params": {"code": code}}), None).await?,
        json!({"tokens": null})
    );
    // Somewhere else is refused.
    let (message, _) = auth
        .refused(
            json!({"provider": "magic", "params": {"email": "ida@example.com", "redirectTo": "https://evil.example.com"}}),
            None,
        )
        .await?;
    assert!(message.contains("redirectTo"), "{message}");
    auth.server.stop().await
}

#[tokio::test]
async fn password_reset_with_an_emailed_code() -> anyhow::Result<()> {
    let auth = Auth::start(password_config()).await?;
    let (_, old_refresh) = tokens(
        &auth
            .ok(sign_up("jo@example.com", "correct horse"), None)
            .await?,
    );
    // Unknown addresses get the same answer, and no message.
    let unknown = auth
        .ok(json!({"provider": "password", "params": {"flow": "reset", "email": "nobody@example.com"}}), None)
        .await?;
    let known = auth
        .ok(
            json!({"provider": "password", "params": {"flow": "reset", "email": "jo@example.com"}}),
            None,
        )
        .await?;
    assert_eq!(unknown, known);
    assert!(auth.last_code("nobody@example.com").is_err());
    let code = auth.last_code("jo@example.com")?;
    let reset = auth
        .ok(
            json!({"provider": "password", "params": {"flow": "reset-verification", "email": "jo@example.com", "code": code, "newPassword": "battery staple"}}),
            None,
        )
        .await?;
    assert!(reset["tokens"].is_object(), "{reset}");
    auth.ok(sign_in("jo@example.com", "battery staple"), None)
        .await?;
    auth.refused(sign_in("jo@example.com", "correct horse"), None)
        .await?;
    // Other sessions ended with the reset.
    assert_eq!(
        auth.ok(json!({"refreshToken": old_refresh}), None).await?,
        json!({"tokens": null})
    );
    auth.server.stop().await
}

#[tokio::test]
async fn the_issuer_publishes_its_keys_and_they_survive_a_restart() -> anyhow::Result<()> {
    let dir = temp_dir();
    let path = dir.path().to_owned();
    let auth = Auth::start_in(dir, password_config()).await?;
    let (token, refresh) = tokens(
        &auth
            .ok(sign_up("kim@example.com", "correct horse"), None)
            .await?,
    );
    let jwks: Value = auth
        .server
        .client
        .get(auth.server.url("/.well-known/jwks.json"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(jwks["keys"][0]["kid"], header(&token)["kid"]);
    assert_eq!(jwks["keys"][0]["alg"], "RS256");
    let discovery: Value = auth
        .server
        .client
        .get(auth.server.url("/.well-known/openid-configuration"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(discovery["issuer"], auth.server.server.url());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path.join("auth_keys.json"))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the keys are the owner's alone");
    }

    // The same data directory, a new process: tokens and sessions hold.
    let Auth {
        server,
        clock,
        _dir,
    } = auth;
    let port = server.server.addr;
    server.stop().await?;
    let mut config = config(&path);
    config.clock = clock.clock();
    config.listen = port;
    config.dev_outbox = true;
    let server = TestServer::spawn_with(config).await?;
    let auth = Auth {
        server,
        clock,
        _dir,
    };
    let me = auth.whoami(&token).await?;
    assert_eq!(me["value"]["kind"], "user", "{me}");
    assert!(auth.ok(json!({"refreshToken": refresh}), None).await?["tokens"].is_object());
    auth.server.stop().await
}

#[tokio::test]
async fn bad_built_in_configs_fail_the_deploy() -> anyhow::Result<()> {
    let dir = temp_dir();
    let server = TestServer::spawn(dir.path()).await?;
    for (config, expected) in [
        (auth_config(json!({})), "empty"),
        (
            auth_config(json!({"p": {"type": "password", "minLength": 0}})),
            "minLength",
        ),
        (
            auth_config(json!({"x": {"type": "carrier-pigeon"}})),
            "unknown variant",
        ),
    ] {
        let (status, body) = server.deploy_with(&[test_guest()], config.clone()).await?;
        assert_eq!(status, 400, "{config}: {body}");
        assert!(body.to_string().contains(expected), "{config}: {body}");
    }
    server.stop().await
}

#[tokio::test]
async fn rotated_keys_keep_old_tokens_valid_until_they_expire() -> anyhow::Result<()> {
    let auth = Auth::start(password_config()).await?;
    let (old_token, refresh) = tokens(
        &auth
            .ok(sign_up("lu@example.com", "correct horse"), None)
            .await?,
    );
    let old_kid = header(&old_token)["kid"].clone();
    let response: Value = auth
        .server
        .client
        .post(auth.server.url("/api/auth/keys/rotate"))
        .header("Authorization", auth.server.admin())
        .json(&json!({"algorithm": "ES256"}))
        .send()
        .await?
        .json()
        .await?;
    let new_kid = response["kid"].clone();
    assert_ne!(new_kid, old_kid, "{response}");
    // Both keys are published; the old token still works.
    let jwks: Value = auth
        .server
        .client
        .get(auth.server.url("/.well-known/jwks.json"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(2), "{jwks}");
    assert_eq!(auth.whoami(&old_token).await?["value"]["kind"], "user");
    let (new_token, _) = tokens(&auth.ok(json!({"refreshToken": refresh}), None).await?);
    assert_eq!(header(&new_token)["kid"], new_kid);
    assert_eq!(header(&new_token)["alg"], "ES256");
    assert_eq!(auth.whoami(&new_token).await?["value"]["kind"], "user");
    // Past its expiry the old token fails like any other.
    auth.clock.advance(Duration::from_secs(3600 + 10));
    let (status, body) = auth
        .server
        .call_as(
            "query",
            "auth:whoami",
            json!({}),
            Some(format!("Bearer {old_token}")),
        )
        .await?;
    assert_eq!(status, 401, "{body}");
    assert!(body.to_string().contains("expired"), "{body}");
    auth.server.stop().await
}

#[tokio::test]
async fn expired_rows_are_swept() -> anyhow::Result<()> {
    let auth = Auth::start(password_config()).await?;
    auth.ok(sign_up("mo@example.com", "correct horse"), None)
        .await?;
    auth.ok(
        json!({"provider": "email", "params": {"email": "ned@example.com"}}),
        None,
    )
    .await?;
    let app = &auth.server.server.app;
    let swept = app
        .sign_in()
        .sweep()
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(swept.sessions + swept.codes, 0, "nothing has expired yet");
    auth.clock.advance(Duration::from_secs(31 * 86_400));
    let swept = app
        .sign_in()
        .sweep()
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(swept.sessions, 1, "{swept:?}");
    assert_eq!(swept.codes, 1, "{swept:?}");
    auth.server.stop().await
}

#[tokio::test]
async fn phone_codes_go_through_the_apps_sms_webhook() -> anyhow::Result<()> {
    use std::sync::{Arc, Mutex};
    // The app's SMS gateway: records what it is asked to send.
    type Sent = Arc<Mutex<Vec<(Option<String>, Value)>>>;
    let sent: Sent = Arc::default();
    let gateway = axum::Router::new().route(
        "/sms",
        axum::routing::post({
            let sent = sent.clone();
            move |headers: axum::http::HeaderMap, axum::Json(body): axum::Json<Value>| async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                sent.lock().unwrap().push((auth, body));
                "queued"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gateway_url = format!("http://{}/sms", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, gateway).await });

    let auth = Auth::start(auth_config(json!({
        "sms": {"type": "phone", "webhook": gateway_url, "codeLength": 6},
    })))
    .await?;
    auth.set_env("AUTH_SMS_KEY", "gateway-token").await?;
    let started = auth
        .ok(
            json!({"provider": "sms", "params": {"phone": "+1 (555) 010-9999"}}),
            None,
        )
        .await?;
    assert_eq!(started, json!({"started": true}));
    let (bearer, message) = sent
        .lock()
        .unwrap()
        .last()
        .cloned()
        .expect("a text was sent");
    assert_eq!(bearer.as_deref(), Some("Bearer gateway-token"));
    assert_eq!(message["to"], "+15550109999", "numbers are normalised");
    let code = message["code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 6);
    assert!(message["message"].as_str().unwrap().contains(&code));
    let signed_in = auth
        .ok(
            json!({"provider": "sms", "params": {"phone": "+15550109999", "code": code}}),
            None,
        )
        .await?;
    let (token, _) = tokens(&signed_in);
    let me = auth.whoami(&token).await?;
    assert_eq!(me["value"]["kind"], "user", "{me}");
    auth.server.stop().await
}

#[tokio::test]
async fn code_guessing_hits_the_failed_attempt_budget() -> anyhow::Result<()> {
    let auth = Auth::start(password_config()).await?;
    auth.ok(
        json!({"provider": "email", "params": {"email": "sam@example.com"}}),
        None,
    )
    .await?;
    let code = auth.last_code("sam@example.com")?;
    let wrong = if code == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    for _ in 0..10 {
        let (message, _) = auth
            .refused(
                json!({"provider": "email", "params": {"email": "sam@example.com", "code": wrong}}),
                None,
            )
            .await?;
        assert_eq!(message, "Could not verify code");
    }
    // Even the right code waits now: guessing an 8-digit code at 10 an hour
    // takes years.
    let (_, data) = auth
        .refused(
            json!({"provider": "email", "params": {"email": "sam@example.com", "code": code}}),
            None,
        )
        .await?;
    assert_eq!(data["code"], "TooManyFailedAttempts");
    // Magic-link codes come without an address: failures are counted per
    // client address, and past the budget even a real link does nothing.
    auth.set_env("SITE_URL", "https://app.example.com").await?;
    auth.ok(
        json!({"provider": "magic", "params": {"email": "tia@example.com"}}),
        None,
    )
    .await?;
    let link = auth.last_code("tia@example.com")?;
    for _ in 0..10 {
        let guess = "A".repeat(32);
        assert_eq!(
            auth.ok(json!({"params": {"code": guess}}), None).await?,
            json!({"tokens": null})
        );
    }
    assert_eq!(
        auth.ok(json!({"params": {"code": link}}), None).await?,
        json!({"tokens": null})
    );
    auth.server.stop().await
}

/// A GitHub Enterprise Server stand-in: the OAuth token endpoint and the
/// user and emails APIs, for `user` with `emails`.
async fn fake_github(user: Value, emails: Value) -> anyhow::Result<String> {
    use axum::routing::{get, post};
    let app = axum::Router::new()
        .route(
            "/login/oauth/access_token",
            post(|body: String| async move {
                // The code, the PKCE verifier and the client secret come in
                // the form.
                let ok = body.contains("code=gh-code")
                    && body.contains("code_verifier=")
                    && body.contains("client_secret=gh-secret");
                axum::Json(if ok {
                    json!({"access_token": "gh-access", "token_type": "bearer"})
                } else {
                    json!({"error": "bad_verification_code"})
                })
            }),
        )
        .route("/api/v3/user", get(move || async move { axum::Json(user) }))
        .route(
            "/api/v3/user/emails",
            get(move || async move { axum::Json(emails) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// Signs in with `github` the way a browser goes through it: the start,
/// Capstan's redirect to GitHub (with its state cookie), GitHub's redirect
/// back, and the code exchange. The tokens, or null.
async fn github_round_trip(auth: &Auth, token: Option<&str>) -> anyhow::Result<Value> {
    let started = auth.ok(json!({"provider": "github"}), token).await?;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let to_github = browser
        .get(started["redirect"].as_str().expect("a redirect"))
        .send()
        .await?;
    assert_eq!(to_github.status(), 302);
    let cookie = to_github.headers()["set-cookie"]
        .to_str()?
        .split(';')
        .next()
        .expect("a cookie")
        .to_owned();
    let location = reqwest::Url::parse(to_github.headers()["location"].to_str()?)?;
    let state = location
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("a state");
    assert!(
        location
            .query_pairs()
            .any(|(k, v)| k == "code_challenge_method" && v == "S256")
    );
    let back = browser
        .get(auth.server.url(&format!(
            "/api/auth/callback/github?code=gh-code&state={state}"
        )))
        .header("cookie", cookie)
        .send()
        .await?;
    assert_eq!(back.status(), 302);
    let app = reqwest::Url::parse(back.headers()["location"].to_str()?)?;
    let Some(code) = app
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
    else {
        return Ok(json!({"tokens": null}));
    };
    auth.ok(
        json!({"params": {"code": code}, "verifier": started["verifier"]}),
        None,
    )
    .await
}

#[tokio::test]
async fn github_links_by_email_only_when_github_verified_it() -> anyhow::Result<()> {
    let mut config = password_config();
    config["auth"]["builtIn"]["providers"]["github"] = json!({"type": "github"});
    let auth = Auth::start(config).await?;
    // Someone with a verified email already (a code was sent to it).
    auth.ok(
        json!({"provider": "email", "params": {"email": "una@example.com"}}),
        None,
    )
    .await?;
    let code = auth.last_code("una@example.com")?;
    let una = claims_user(
        &auth
            .ok(
                json!({"provider": "email", "params": {"email": "una@example.com", "code": code}}),
                None,
            )
            .await?,
    );
    for (name, value) in [
        ("AUTH_GITHUB_ID", "gh-client"),
        ("AUTH_GITHUB_SECRET", "gh-secret"),
        ("SITE_URL", "https://app.example.com"),
    ] {
        auth.set_env(name, value).await?;
    }

    // A GitHub account claiming her address without GitHub having verified
    // it gets a user of its own.
    let unverified = fake_github(
        json!({"id": 1001, "login": "mallory", "name": "Mallory"}),
        json!([{"email": "una@example.com", "primary": true, "verified": false}]),
    )
    .await?;
    auth.set_env("AUTH_GITHUB_ISSUER", &unverified).await?;
    let mallory = github_round_trip(&auth, None).await?;
    assert!(mallory["tokens"].is_object(), "{mallory}");
    assert_ne!(
        claims_user(&mallory),
        una,
        "no takeover through an unverified email"
    );

    // Her own GitHub account, with the address verified, joins her user.
    let verified = fake_github(
        json!({"id": 2002, "login": "una", "name": "Una"}),
        json!([{"email": "Una@Example.com", "primary": true, "verified": true}]),
    )
    .await?;
    auth.set_env("AUTH_GITHUB_ISSUER", &verified).await?;
    let signed_in = github_round_trip(&auth, None).await?;
    assert_eq!(claims_user(&signed_in), una);
    let (token, _) = tokens(&signed_in);
    let (_, me) = auth
        .server
        .call_as(
            "query",
            "auth:me",
            json!({}),
            Some(format!("Bearer {token}")),
        )
        .await?;
    assert_eq!(me["value"]["name"], "Una", "{me}");
    auth.server.stop().await
}
