//! The unmodified `convex` npm client (installed into `tests/conformance`
//! by `./tests/run`) against a real server: `node --test` runs each suite.
//! The auth suite also starts a real OpenID Connect provider
//! (`oidc-provider`) on loopback and signs users in at it; the platform
//! suite drives the billing example's webhook, scheduled receipt and
//! uploads with `fetch` beside the client.

use serde_json::json;

use crate::common::*;

/// Runs `node --test <file>` in `tests/conformance` with `env`.
async fn node_suite(file: &str, env: &[(&str, String)]) -> anyhow::Result<()> {
    let suite = capstan_test_support::root().join("tests/conformance");
    for package in [
        "convex",
        "oidc-provider",
        "@convex-dev/auth",
        "playwright-core",
        "smtp-server",
    ] {
        anyhow::ensure!(
            suite
                .join("node_modules")
                .join(package)
                .join("package.json")
                .exists(),
            "the {package} npm package is not installed: run `npm ci` in {} (./tests/run does)",
            suite.display()
        );
    }
    let mut command = tokio::process::Command::new("node");
    command
        .args([
            "--test",
            "--test-reporter=spec",
            "--test-timeout=90000",
            file,
        ])
        .current_dir(&suite)
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::time::timeout(std::time::Duration::from_secs(240), command.output())
        .await
        .map_err(|_| anyhow::anyhow!("{file} did not finish in 4 minutes"))??;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{report}");
    anyhow::ensure!(output.status.success(), "{file} failed:\n{report}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_convex_npm_client_works_against_capstan() -> anyhow::Result<()> {
    let dir = temp_dir();
    let server = TestServer::with_guest(dir.path()).await?;
    node_suite(
        "conformance.test.mjs",
        &[("CAPSTAN_URL", server.server.url())],
    )
    .await?;
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_convex_npm_client_drives_webhooks_schedules_and_uploads() -> anyhow::Result<()> {
    let dir = temp_dir();
    let mut config = config(dir.path());
    config.platform.fetch.allowed_networks = vec!["127.0.0.0/8".into()];
    let server = TestServer::spawn_with(config).await?;
    let (status, body) = server.deploy(&[component("billing", "billing")]).await?;
    anyhow::ensure!(status == 200, "{body}");
    let (mail_url, _sent) = crate::platform::mail_api().await?;
    server
        .set_env("PAYMENT_WEBHOOK_SECRET", "whsec_conformance")
        .await?;
    server.set_env("MAIL_API_URL", &mail_url).await?;
    server.set_env("MAIL_API_KEY", "mail-key").await?;
    node_suite(
        "platform.test.mjs",
        &[
            ("CAPSTAN_URL", server.server.url()),
            ("PAYMENT_WEBHOOK_SECRET", "whsec_conformance".into()),
        ],
    )
    .await?;
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_convex_npm_client_signs_in_with_a_real_oidc_provider() -> anyhow::Result<()> {
    // The provider starts inside the suite, on a port chosen here so that
    // the app's auth config can name it first.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let dir = temp_dir();
    let mut config = config(dir.path());
    // The suite rotates the provider's key; an unknown kid may trigger a
    // refetch twice a second (production: every 10 s).
    config.auth.refetch_interval = std::time::Duration::from_millis(500);
    let server = TestServer::spawn_with(config).await?;
    let app_config = json!({"auth": {"providers": [{
        "domain": format!("http://127.0.0.1:{port}"), "applicationID": "capstan-test",
    }]}});
    let (status, body) = server.deploy_with(&[test_guest()], app_config).await?;
    anyhow::ensure!(status == 200, "deploy: {body}");
    node_suite(
        "auth.test.mjs",
        &[
            ("CAPSTAN_URL", server.server.url()),
            ("OIDC_PORT", port.to_string()),
        ],
    )
    .await?;
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_auth_works_with_the_npm_client_and_a_real_oidc_provider() -> anyhow::Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let dir = temp_dir();
    let server = TestServer::spawn(dir.path()).await?;
    let app_config = json!({"auth": {"builtIn": {"providers": {
        "password": {"type": "password"},
        "okta": {"type": "oidc", "issuer": format!("http://127.0.0.1:{port}")},
    }}}});
    let (status, body) = server.deploy_with(&[test_guest()], app_config).await?;
    anyhow::ensure!(status == 200, "deploy: {body}");
    let site = "http://app.localhost:5173";
    for (name, value) in [
        ("AUTH_OKTA_ID", "capstan-oauth"),
        ("AUTH_OKTA_SECRET", "oauth-test-secret"),
        ("SITE_URL", site),
    ] {
        server.set_env(name, value).await?;
    }
    node_suite(
        "builtin_auth.test.mjs",
        &[
            ("CAPSTAN_URL", server.server.url()),
            ("OIDC_PORT", port.to_string()),
            ("SITE_URL", site.to_owned()),
        ],
    )
    .await?;
    server.stop().await
}

/// A free port on loopback.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_auth_in_a_real_browser_with_real_email_and_oauth() -> anyhow::Result<()> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    anyhow::ensure!(
        std::path::Path::new(&chromium).exists(),
        "no Chromium at {chromium}: install Debian's `chromium` package (./tests/run does) or set CHROMIUM"
    );
    let (site_port, smtp_port, oidc_port) = (free_port()?, free_port()?, free_port()?);
    let dir = temp_dir();
    let server = TestServer::spawn(dir.path()).await?;
    let app_config = json!({"auth": {"builtIn": {"providers": {
        "password": {"type": "password", "reset": {"type": "email"}},
        "email-code": {"type": "email", "maxAgeSeconds": 900},
        "magic": {"type": "email", "link": true},
        "okta": {"type": "oidc", "issuer": format!("http://127.0.0.1:{oidc_port}")},
    }}}});
    let (status, body) = server.deploy_with(&[test_guest()], app_config).await?;
    anyhow::ensure!(status == 200, "deploy: {body}");
    for (name, value) in [
        ("AUTH_OKTA_ID", "capstan-oauth".to_owned()),
        ("AUTH_OKTA_SECRET", "oauth-test-secret".to_owned()),
        ("SITE_URL", format!("http://127.0.0.1:{site_port}")),
        ("AUTH_SMTP_URL", format!("smtp://127.0.0.1:{smtp_port}")),
        (
            "AUTH_EMAIL_FROM",
            "Capstan Test <auth@capstan.test>".to_owned(),
        ),
    ] {
        server.set_env(name, &value).await?;
    }
    node_suite(
        "browser.test.mjs",
        &[
            ("CAPSTAN_URL", server.server.url()),
            ("SITE_PORT", site_port.to_string()),
            ("SMTP_PORT", smtp_port.to_string()),
            ("OIDC_PORT", oidc_port.to_string()),
            ("CHROMIUM", chromium),
        ],
    )
    .await?;
    server.stop().await
}
