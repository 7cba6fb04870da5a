//! Who is calling, end to end: user tokens from a custom JWT provider (keys
//! made here) over HTTP and WebSocket, the admin key and acting as a user,
//! service keys, the shared-secret check, and auth configs refused at deploy.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use capstan_protocol::{Clock, ManualClock};
use ring::rand::SystemRandom;
use ring::signature::{self, KeyPair};
use serde_json::{Value, json};

use crate::common::*;
use crate::socket::Client;

const ISSUER: &str = "https://auth.example.com";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// An ES256 issuer whose JWKS is written into the app config.
struct Issuer {
    key: jsonwebtoken::EncodingKey,
    jwk: Value,
    /// When its tokens are issued; the server it is deployed to keeps the
    /// same time.
    clock: Clock,
}

impl Issuer {
    fn new() -> Issuer {
        Issuer::with_clock(Clock::system())
    }

    fn with_clock(clock: Clock) -> Issuer {
        let rng = SystemRandom::new();
        let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .expect("key");
        let pair = signature::EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .expect("key");
        let point = pair.public_key().as_ref();
        Issuer {
            key: jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({"kty": "EC", "crv": "P-256", "kid": "k1",
                        "x": b64(&point[1..33]), "y": b64(&point[33..65])}),
            clock,
        }
    }

    fn config(&self) -> Value {
        json!({"auth": {"providers": [{
            "type": "customJwt", "issuer": ISSUER, "algorithm": "ES256",
            "applicationID": "capstan-test", "jwks": {"keys": [self.jwk]},
        }]}})
    }

    fn token(&self, subject: &str, extra: Value, lifetime: u64) -> String {
        let now = self.clock.unix_seconds();
        let mut claims = json!({"iss": ISSUER, "sub": subject, "aud": "capstan-test",
                                "iat": now, "exp": now + lifetime});
        for (k, v) in extra.as_object().expect("object") {
            claims[k] = v.clone();
        }
        let header = jsonwebtoken::Header {
            kid: Some("k1".into()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256)
        };
        jsonwebtoken::encode(&header, &claims, &self.key).expect("sign")
    }
}

async fn server_with_auth(issuer: &Issuer) -> anyhow::Result<(tempfile::TempDir, TestServer)> {
    let dir = temp_dir();
    let mut config = config(dir.path());
    // Expiry is tested to the second.
    config.auth.leeway = Duration::ZERO;
    config.clock = issuer.clock.clone();
    let server = TestServer::spawn_with(config).await?;
    let (status, body) = server.deploy_with(&[test_guest()], issuer.config()).await?;
    anyhow::ensure!(status == 200, "deploy: {body}");
    Ok((dir, server))
}

fn bearer(token: &str) -> Option<String> {
    Some(format!("Bearer {token}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_of_every_kind_see_the_caller_over_http() -> anyhow::Result<()> {
    let issuer = Issuer::new();
    let (_dir, server) = server_with_auth(&issuer).await?;

    let (_, anonymous) = server.call("query", "auth:whoami", json!({})).await?;
    assert_eq!(anonymous["value"], json!({"kind": "anonymous"}));

    let token = issuer.token(
        "user-7|session-3",
        json!({"name": "Ada", "email": "ada@example.com", "org": {"id": "o1"}}),
        600,
    );
    let (status, body) = server
        .call_as("query", "auth:whoami", json!({}), bearer(&token))
        .await?;
    assert_eq!(status, 200, "{body}");
    let user = &body["value"];
    assert_eq!(user["kind"], "user");
    assert_eq!(user["userId"], "user-7");
    assert_eq!(user["sessionId"], "session-3");
    assert_eq!(
        user["identity"]["tokenIdentifier"],
        format!("{ISSUER}|user-7|session-3")
    );
    assert_eq!(user["identity"]["issuer"], ISSUER);
    assert_eq!(user["identity"]["email"], "ada@example.com");
    assert_eq!(user["identity"]["org.id"], "o1");

    let (_, mutation) = server
        .call_as(
            "mutation",
            "auth:whoami_mutation",
            json!({}),
            bearer(&token),
        )
        .await?;
    assert_eq!(mutation["value"], *user);
    // An action's caller reaches the functions it runs.
    let (_, action) = server
        .call_as("action", "auth:whoami_action", json!({}), bearer(&token))
        .await?;
    assert_eq!(action["value"]["own"], *user);
    assert_eq!(action["value"]["nested"], *user);

    // Users reach public functions only.
    let (status, _) = server
        .call_as("query", "auth:whoami_internal", json!({}), bearer(&token))
        .await?;
    assert_eq!(status, 404);

    // Refused tokens: 401 with the failed check, and nothing runs.
    let tampered = {
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = b64(
            json!({"iss": ISSUER, "sub": "admin", "aud": "capstan-test", "exp": now() + 60})
                .to_string()
                .as_bytes(),
        );
        parts.join(".")
    };
    for (token, expected) in [
        (tampered, "signature is invalid"),
        (issuer.token("u", json!({"exp": now() - 100}), 0), "expired"),
        (
            issuer.token("u", json!({"aud": "another-app"}), 600),
            "No auth provider",
        ),
        (
            Issuer::new().token("u", json!({}), 600),
            "signature is invalid",
        ),
        ("garbage".to_owned(), "Could not parse"),
    ] {
        let (status, body) = server
            .call_as(
                "mutation",
                "auth:whoami_mutation",
                json!({}),
                bearer(&token),
            )
            .await?;
        assert_eq!(status, 401, "{body}");
        let text = body.to_string();
        assert!(text.contains(expected), "{expected}: {text}");
        assert!(!text.contains(&token), "the token is echoed: {text}");
    }
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_keys_act_as_users_and_service_keys_reach_internal_functions() -> anyhow::Result<()> {
    let issuer = Issuer::new();
    let (_dir, server) = server_with_auth(&issuer).await?;
    let admin = server.admin();

    let (_, body) = server
        .call_as(
            "query",
            "auth:whoami_internal",
            json!({}),
            Some(admin.clone()),
        )
        .await?;
    assert_eq!(body["value"], json!({"kind": "admin"}));

    // The admin key acting as a user (the protocol's `impersonating`).
    let acting = base64::engine::general_purpose::STANDARD
        .encode(json!({"subject": "u9|s1", "issuer": ISSUER, "name": "Tester"}).to_string());
    let (_, body) = server
        .call_as(
            "query",
            "auth:whoami",
            json!({}),
            Some(format!("{admin}:{acting}")),
        )
        .await?;
    assert_eq!(body["value"]["kind"], "user");
    assert_eq!(body["value"]["userId"], "u9");
    assert_eq!(body["value"]["identity"]["name"], "Tester");
    // Only the admin key can act as someone.
    let (status, _) = server
        .call_as(
            "query",
            "auth:whoami",
            json!({}),
            Some(format!("Convex not-the-key:{acting}")),
        )
        .await?;
    assert_eq!(status, 401);

    // Service keys: created once, listed without the key, revoked.
    let created: Value = server
        .client
        .post(server.url("/api/service_keys/billing"))
        .header("Authorization", &admin)
        .send()
        .await?
        .json()
        .await?;
    let key = created["key"].as_str().expect("key").to_owned();
    let (status, body) = server
        .call_as("query", "auth:whoami_internal", json!({}), bearer(&key))
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"], json!({"kind": "service", "name": "billing"}));
    let list: Value = server
        .client
        .get(server.url("/api/service_keys"))
        .header("Authorization", &admin)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(list[0]["name"], "billing");
    assert!(!list.to_string().contains(&key[20..]), "{list}");
    // A service key is not an admin key: known, but not allowed.
    let status = server
        .client
        .get(server.url("/api/service_keys"))
        .header("Authorization", format!("Bearer {key}"))
        .send()
        .await?
        .status();
    assert_eq!(status, 403);
    let status = server
        .client
        .delete(server.url("/api/service_keys/billing"))
        .header("Authorization", &admin)
        .send()
        .await?
        .status();
    assert_eq!(status, 204);
    let (status, body) = server
        .call_as("query", "auth:whoami", json!({}), bearer(&key))
        .await?;
    assert_eq!(status, 401);
    assert!(body.to_string().contains("revoked"), "{body}");
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_secrets_are_checked_on_the_server() -> anyhow::Result<()> {
    let dir = temp_dir();
    let server = TestServer::with_guest(dir.path()).await?;
    let status = server
        .client
        .put(server.url("/api/env/WEBHOOK_SECRET"))
        .header("Authorization", server.admin())
        .json(&json!({"value": "correct horse battery staple"}))
        .send()
        .await?
        .status();
    assert_eq!(status, 204);
    let check = |presented: &'static str| {
        server.call(
            "query",
            "auth:check_secret",
            json!({"name": "WEBHOOK_SECRET", "presented": presented}),
        )
    };
    assert_eq!(
        check("correct horse battery staple").await?.1["value"],
        true
    );
    for wrong in [
        "",
        "c",
        "correct horse battery stapl",
        "correct horse battery staple!",
        "Correct horse battery staple",
    ] {
        assert_eq!(check(wrong).await?.1["value"], false, "{wrong:?}");
    }
    let (_, body) = server
        .call(
            "query",
            "auth:check_secret",
            json!({"name": "UNSET", "presented": "x"}),
        )
        .await?;
    assert_eq!(body["status"], "error");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap_or("")
            .contains("UNSET"),
        "{body}"
    );
    // An empty secret matches nothing, not even an empty value.
    let status = server
        .client
        .put(server.url("/api/env/EMPTY"))
        .header("Authorization", server.admin())
        .json(&json!({"value": ""}))
        .send()
        .await?
        .status();
    assert_eq!(status, 204);
    let (_, body) = server
        .call(
            "query",
            "auth:check_secret",
            json!({"name": "EMPTY", "presented": ""}),
        )
        .await?;
    assert_eq!(body["status"], "error", "{body}");
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_authenticate_refresh_and_expire() -> anyhow::Result<()> {
    // Tokens expire on the server's clock, which the test moves on.
    let hand = ManualClock::new();
    let issuer = Issuer::with_clock(hand.clock());
    let (_dir, server) = server_with_auth(&issuer).await?;

    let mut client = Client::connect(&server).await?;
    client.subscribe(0, 0, "auth:whoami", json!({})).await?;
    assert_eq!(client.value_of(0).await?, json!({"kind": "anonymous"}));

    client
        .send(
            json!({"type": "Authenticate", "baseVersion": 0, "tokenType": "User",
                     "value": issuer.token("ada", json!({"name": "Ada"}), 600)}),
        )
        .await?;
    let transition = client.expect("Transition").await?;
    assert_eq!(transition["endVersion"]["identity"], 1);
    let whoami = transition["modifications"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["queryId"] == 0))
        .map(|m| m["value"].clone())
        .expect("the query runs again under the new identity");
    assert_eq!(whoami["identity"]["subject"], "ada");

    // A refreshed token for another user: the query follows.
    client
        .send(
            json!({"type": "Authenticate", "baseVersion": 1, "tokenType": "User",
                     "value": issuer.token("grace", json!({}), 600)}),
        )
        .await?;
    assert_eq!(client.value_of(0).await?["identity"]["subject"], "grace");
    // Mutations run as the socket's user.
    client
        .mutation(0, "auth:whoami_mutation", json!({}))
        .await?;
    let response = client.expect("MutationResponse").await?;
    assert_eq!(response["result"]["identity"]["subject"], "grace");

    // A token the server refuses: AuthError for that attempt, then a close.
    client
        .send(
            json!({"type": "Authenticate", "baseVersion": 2, "tokenType": "User",
                     "value": Issuer::new().token("mallory", json!({}), 600)}),
        )
        .await?;
    let error = loop {
        let message = client.next().await?;
        if message["type"] == "AuthError" {
            break message;
        }
    };
    assert_eq!(error["authUpdateAttempted"], true);
    assert_eq!(error["baseVersion"], 2);
    assert!(
        error["error"].as_str().unwrap_or("").contains("signature"),
        "{error}"
    );
    assert_eq!(client.closed().await?, None);

    // A token that expires while the socket holds it: the next mutation
    // finds it expired and the socket ends with AuthError (not attempted).
    let mut short = Client::connect(&server).await?;
    short
        .send(
            json!({"type": "Authenticate", "baseVersion": 0, "tokenType": "User",
                     "value": issuer.token("brief", json!({}), 2)}),
        )
        .await?;
    short.expect("Transition").await?;
    hand.advance(Duration::from_millis(3_100));
    short.mutation(0, "auth:whoami_mutation", json!({})).await?;
    let error = short.expect("AuthError").await?;
    assert_eq!(error["authUpdateAttempted"], false);
    assert_eq!(error["baseVersion"], 1);
    assert_eq!(short.closed().await?, None);

    // The admin key acts as a user over the socket too; another key cannot.
    let mut admin = Client::connect(&server).await?;
    admin.subscribe(0, 0, "auth:whoami", json!({})).await?;
    admin.value_of(0).await?;
    admin
        .send(
            json!({"type": "Authenticate", "baseVersion": 0, "tokenType": "Admin",
                     "value": server.server.admin_key.expose(),
                     "impersonating": {"issuer": ISSUER, "subject": "tester|s1"}}),
        )
        .await?;
    let acting = admin.value_of(0).await?;
    assert_eq!(acting["userId"], "tester", "{acting}");
    let mut pretender = Client::connect(&server).await?;
    pretender
        .send(
            json!({"type": "Authenticate", "baseVersion": 0, "tokenType": "Admin",
                     "value": "capstan_admin_guess",
                     "impersonating": {"issuer": ISSUER, "subject": "tester|s1"}}),
        )
        .await?;
    assert_eq!(
        pretender.expect("AuthError").await?["authUpdateAttempted"],
        true
    );
    assert_eq!(pretender.closed().await?, None);

    // A refreshed token of the same user extends the socket's life.
    let mut renewed = Client::connect(&server).await?;
    renewed
        .send(
            json!({"type": "Authenticate", "baseVersion": 0, "tokenType": "User",
                     "value": issuer.token("lasting", json!({}), 2)}),
        )
        .await?;
    renewed.expect("Transition").await?;
    renewed
        .send(
            json!({"type": "Authenticate", "baseVersion": 1, "tokenType": "User",
                     "value": issuer.token("lasting", json!({}), 600)}),
        )
        .await?;
    assert_eq!(
        renewed.expect("Transition").await?["endVersion"]["identity"],
        2
    );
    hand.advance(Duration::from_millis(3_100));
    renewed
        .mutation(0, "auth:whoami_mutation", json!({}))
        .await?;
    let response = renewed.expect("MutationResponse").await?;
    assert_eq!(
        response["result"]["identity"]["subject"], "lasting",
        "{response}"
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_auth_configs_are_refused_at_deploy_and_change_nothing() -> anyhow::Result<()> {
    let issuer = Issuer::new();
    let (_dir, server) = server_with_auth(&issuer).await?;
    let token = issuer.token("ada", json!({}), 600);
    for (config, expected) in [
        (
            json!({"auth": {"providers": [{"domain": "https://x.example.com"}]}}),
            "applicationID",
        ),
        (
            json!({"auth": {"providers": [{"type": "customJwt", "issuer": ISSUER,
                                        "algorithm": "HS256", "jwks": "https://x"}]}}),
            "HS256",
        ),
        (json!({"auth": {"provider": []}}), "unknown field"),
    ] {
        let (status, body) = server.deploy_with(&[test_guest()], config).await?;
        assert_eq!(status, 400, "{body}");
        assert!(body.to_string().contains(expected), "{expected}: {body}");
    }
    // The deployed config still verifies tokens.
    let (status, body) = server
        .call_as("query", "auth:whoami", json!({}), bearer(&token))
        .await?;
    assert_eq!(
        (status, body["value"]["kind"].clone()),
        (200, json!("user"))
    );
    server.stop().await
}
