use std::path::Path;

use base64::Engine as _;
use capstan_server::{Server, ServerConfig};
use serde_json::{Value, json};

pub use capstan_test_support::component;

pub fn test_guest() -> Vec<u8> {
    component("capstan-test-guest", "test_guest")
}

pub struct TestServer {
    pub server: Server,
    pub client: reqwest::Client,
}

pub fn config(data: &Path) -> ServerConfig {
    let mut config = ServerConfig::new(data, "127.0.0.1:0".parse().expect("address"));
    config.host.query_timeout = std::time::Duration::from_millis(500);
    config.host.mutation_timeout = std::time::Duration::from_millis(500);
    config.host.memory = 32 << 20;
    config.host.max_instances = 64;
    config.limits.max_concurrent_calls = 16;
    config.limits.max_request_body = 1 << 20;
    config.host.max_args = 1 << 20;
    config.host.max_result = 1 << 20;
    config.sync.max_message_size = 1 << 20;
    // As `capstan dev`: the tests read what functions log.
    config.logs_to_clients = true;
    // Every test client comes from 127.0.0.1, many at once: the
    // per-address caps and rates are the hostile-client tests' business.
    config.http.max_connections_per_ip = 100_000;
    config.http.max_sockets_per_ip = 100_000;
    let unlimited = capstan_server::rate_limit::Rate {
        per_second: 0.0,
        burst: 1.0,
    };
    config.rate_limits.calls = unlimited;
    config.rate_limits.sockets = unlimited;
    // The one switch: `CAPSTAN_TEST_ENGINE=postgres` keeps each test's
    // store in a PostgreSQL database named after its data directory.
    if capstan_test_support::engine_is_postgres() {
        let url =
            capstan_test_support::Postgres::shared().database_for(&data.display().to_string());
        config.postgres = Some(capstan_store::PostgresConfig::new(url));
    }
    config
}

impl TestServer {
    pub async fn spawn(data: &Path) -> anyhow::Result<TestServer> {
        TestServer::spawn_with(config(data)).await
    }

    pub async fn spawn_with(config: ServerConfig) -> anyhow::Result<TestServer> {
        let server = Server::start(config).await?;
        Ok(TestServer {
            server,
            client: reqwest::Client::new(),
        })
    }

    /// A server with the test guest deployed.
    pub async fn with_guest(data: &Path) -> anyhow::Result<TestServer> {
        TestServer::guest_with(config(data)).await
    }

    /// A server with `config` and the test guest deployed.
    pub async fn guest_with(config: ServerConfig) -> anyhow::Result<TestServer> {
        let server = TestServer::spawn_with(config).await?;
        let (status, body) = server.deploy(&[test_guest()]).await?;
        anyhow::ensure!(status == 200, "deploy failed: {body}");
        Ok(server)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    pub fn admin(&self) -> String {
        format!("Convex {}", self.server.admin_key.expose())
    }

    pub async fn deploy(&self, components: &[Vec<u8>]) -> anyhow::Result<(u16, Value)> {
        self.deploy_with(components, json!({})).await
    }

    /// Deploys `components` with the app config `config`.
    pub async fn deploy_with(
        &self,
        components: &[Vec<u8>],
        config: Value,
    ) -> anyhow::Result<(u16, Value)> {
        let body = json!({
            "components": components
                .iter()
                .map(|c| base64::engine::general_purpose::STANDARD.encode(c))
                .collect::<Vec<_>>(),
            "config": config,
        });
        let response = self
            .client
            .post(self.url("/api/deploy"))
            .header("Authorization", self.admin())
            .json(&body)
            .send()
            .await?;
        Ok((response.status().as_u16(), response.json().await?))
    }

    /// Sets deployment environment variable `name` through the admin API.
    pub async fn set_env(&self, name: &str, value: &str) -> anyhow::Result<()> {
        self.client
            .put(self.url(&format!("/api/env/{name}")))
            .header("Authorization", self.admin())
            .json(&json!({ "value": value }))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// Calls `/api/{kind}` as a client, the way `ConvexHttpClient` does.
    pub async fn call(&self, kind: &str, path: &str, args: Value) -> anyhow::Result<(u16, Value)> {
        self.call_as(kind, path, args, None).await
    }

    pub async fn call_as(
        &self,
        kind: &str,
        path: &str,
        args: Value,
        auth: Option<String>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self
            .client
            .post(self.url(&format!("/api/{kind}")))
            .header("Convex-Client", "npm-1.48.0")
            .json(&json!({"path": path, "format": "convex_encoded_json", "args": [args]}));
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// The value of a successful call.
    pub async fn value(&self, kind: &str, path: &str, args: Value) -> anyhow::Result<Value> {
        let (status, body) = self.call(kind, path, args).await?;
        anyhow::ensure!(
            status == 200 && body["status"] == "success",
            "{path}: {status} {body}"
        );
        Ok(body["value"].clone())
    }

    /// `GET /health`.
    pub async fn health(&self) -> anyhow::Result<Value> {
        Ok(self
            .client
            .get(self.url("/health"))
            .send()
            .await?
            .json()
            .await?)
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.server.stop().await?;
        Ok(())
    }
}

pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir")
}
