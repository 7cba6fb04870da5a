use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use base64::Engine as _;
use capstan_server::{Server, ServerConfig};
use serde_json::{Value, json};

/// Builds a workspace package for `wasm32-wasip2` (once per test process)
/// and returns the component's bytes.
pub fn component(package: &str, file: &str) -> Vec<u8> {
    static BUILT: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut built = BUILT
        .get_or_init(|| Mutex::new(Vec::new()))
        .lock()
        .expect("not poisoned");
    if !built.iter().any(|p| p == package) {
        let status = std::process::Command::new(env!("CARGO"))
            .current_dir(&root)
            .args([
                "build",
                "--quiet",
                "--target",
                "wasm32-wasip2",
                "-p",
                package,
            ])
            .status()
            .expect("cargo runs");
        assert!(
            status.success(),
            "building {package} for wasm32-wasip2 failed"
        );
        built.push(package.to_owned());
    }
    let path: PathBuf = root
        .join("target/wasm32-wasip2/debug")
        .join(format!("{file}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

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
    config.max_concurrent_calls = 16;
    config.max_request_body = 1 << 20;
    config.host.max_args = 1 << 20;
    config.host.max_result = 1 << 20;
    config
}

impl TestServer {
    pub async fn spawn(data: &Path) -> anyhow::Result<TestServer> {
        let server = Server::start(config(data)).await?;
        Ok(TestServer {
            server,
            client: reqwest::Client::new(),
        })
    }

    /// A server with the test guest deployed.
    pub async fn with_guest(data: &Path) -> anyhow::Result<TestServer> {
        let server = TestServer::spawn(data).await?;
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
        let body = json!({
            "components": components
                .iter()
                .map(|c| base64::engine::general_purpose::STANDARD.encode(c))
                .collect::<Vec<_>>(),
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

    pub async fn stop(self) -> anyhow::Result<()> {
        self.server.stop().await?;
        Ok(())
    }
}

pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir")
}
