//! A running server, through its HTTP API with the admin key.

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use capstan_server::ServiceKeys;
use serde_json::{Value, json};

pub struct Remote {
    url: String,
    admin_key: String,
    client: reqwest::Client,
}

impl Remote {
    pub fn new(url: &str, admin_key: String) -> Self {
        if !is_private(url) {
            eprintln!(
                "warning: sending the admin key over plain http to {url}: anyone on the way can read it; use https"
            );
        }
        Remote {
            url: url.trim_end_matches('/').to_owned(),
            admin_key,
            client: reqwest::Client::new(),
        }
    }

    fn auth(&self) -> String {
        format!("Convex {}", self.admin_key)
    }

    async fn check(response: reqwest::Response) -> anyhow::Result<Value> {
        let status = response.status();
        let text = response.text().await?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
        if !status.is_success() {
            let message = body["message"].as_str().map_or(text, str::to_owned);
            bail!("the server answered {status}: {message}");
        }
        Ok(body)
    }

    pub async fn deploy(&self, components: &[Vec<u8>], config: &Value) -> anyhow::Result<Value> {
        let body = json!({
            "components": components.iter().map(|c| base64::engine::general_purpose::STANDARD.encode(c)).collect::<Vec<_>>(),
            "config": config,
        });
        let response = self
            .client
            .post(format!("{}/api/deploy", self.url))
            .header("Authorization", self.auth())
            .json(&body)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.url))?;
        Self::check(response).await
    }

    pub async fn run(&self, path: &str, args: Value) -> anyhow::Result<Value> {
        let functions = self.get("/api/functions").await?;
        let canonical = if path.contains(':') {
            path.to_owned()
        } else {
            format!("{path}:default")
        };
        let kind = functions
            .as_array()
            .and_then(|list| list.iter().find(|f| f["path"] == canonical.as_str()))
            .and_then(|f| f["kind"].as_str())
            .with_context(|| format!("the deployment has no function {canonical}"))?
            .to_owned();
        let response = self
            .client
            .post(format!("{}/api/{kind}", self.url))
            .header("Authorization", self.auth())
            .json(&json!({"path": canonical, "args": args, "format": "convex_encoded_json"}))
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.url))?;
        let body = Self::check(response).await?;
        if let Some(lines) = body["logLines"].as_array() {
            for line in lines {
                eprintln!("{}", line.as_str().unwrap_or_default());
            }
        }
        if body["status"] == "success" {
            Ok(body["value"].clone())
        } else {
            let data = body
                .get("errorData")
                .map(|d| format!(" (data: {d})"))
                .unwrap_or_default();
            bail!(
                "{}{data}",
                body["errorMessage"]
                    .as_str()
                    .unwrap_or("the function failed")
            )
        }
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .header("Authorization", self.auth())
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.url))?;
        Self::check(response).await
    }

    pub async fn env(&self) -> anyhow::Result<BTreeMap<String, String>> {
        Ok(serde_json::from_value(self.get("/api/env").await?)?)
    }

    pub async fn set_env(&self, name: &str, value: Option<&str>) -> anyhow::Result<()> {
        let url = format!("{}/api/env/{name}", self.url);
        let request = match value {
            Some(value) => self.client.put(url).json(&json!({ "value": value })),
            None => self.client.delete(url),
        };
        let response = request
            .header("Authorization", self.auth())
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.url))?;
        Self::check(response).await.map(|_| ())
    }

    /// Creates a service key, failing after `expires_in_seconds` if given,
    /// and returns it (the server keeps only its digest).
    pub async fn create_service_key(
        &self,
        name: &str,
        expires_in_seconds: Option<u64>,
    ) -> anyhow::Result<String> {
        ServiceKeys::check_name(name).map_err(anyhow::Error::msg)?;
        let response = self
            .client
            .post(format!("{}/api/service_keys/{name}", self.url))
            .header("Authorization", self.auth())
            .json(&json!({ "expiresInSeconds": expires_in_seconds }))
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.url))?;
        let body = Self::check(response).await?;
        body["key"]
            .as_str()
            .map(str::to_owned)
            .context("the server answered without a key")
    }

    pub async fn service_keys(&self) -> anyhow::Result<Vec<Value>> {
        Ok(serde_json::from_value(
            self.get("/api/service_keys").await?,
        )?)
    }

    pub async fn revoke_service_key(&self, name: &str) -> anyhow::Result<()> {
        ServiceKeys::check_name(name).map_err(anyhow::Error::msg)?;
        let response = self
            .client
            .delete(format!("{}/api/service_keys/{name}", self.url))
            .header("Authorization", self.auth())
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.url))?;
        Self::check(response).await.map(|_| ())
    }

    /// Replaces the running server's admin key; the new one is answered.
    pub async fn rotate_admin_key(&self) -> anyhow::Result<String> {
        let response = self
            .client
            .post(format!("{}/api/admin_key/rotate", self.url))
            .header("Authorization", self.auth())
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.url))?;
        let body = Self::check(response).await?;
        body["adminKey"]
            .as_str()
            .map(str::to_owned)
            .context("the server answered without a key")
    }

    /// A new signing key for built-in auth (`rotate`) or Convex Auth's
    /// (`import`): its `kid`.
    pub async fn auth_keys(&self, action: &str, body: Value) -> anyhow::Result<String> {
        let response = self
            .client
            .post(format!("{}/api/auth/keys/{action}", self.url))
            .header("Authorization", self.auth())
            .json(&body)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.url))?;
        let body = Self::check(response).await?;
        body["kid"]
            .as_str()
            .map(str::to_owned)
            .context("the server answered without a key id")
    }

    /// Streams a snapshot ZIP to `path` (through `path.part`, renamed when
    /// whole); its size.
    pub async fn export(&self, path: &std::path::Path, files: bool) -> anyhow::Result<u64> {
        use std::io::Write as _;
        let mut response = self
            .client
            .get(format!(
                "{}/api/export?includeFileStorage={files}",
                self.url
            ))
            .header("Authorization", self.auth())
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.url))?;
        if !response.status().is_success() {
            Self::check(response).await?;
            bail!("the export failed");
        }
        let partial = path.with_extension("zip.part");
        let mut file = std::fs::File::create(&partial)
            .with_context(|| format!("cannot write {}", partial.display()))?;
        let mut size = 0u64;
        while let Some(chunk) = response.chunk().await? {
            file.write_all(&chunk)?;
            size += chunk.len() as u64;
        }
        file.sync_all()?;
        std::fs::rename(&partial, path)?;
        Ok(size)
    }

    /// Sends the snapshot at `path` to be loaded; what was loaded.
    pub async fn import(&self, path: &std::path::Path) -> anyhow::Result<Value> {
        let file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("cannot read {}", path.display()))?;
        let length = file.metadata().await?.len();
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        let response = self
            .client
            .post(format!("{}/api/import", self.url))
            .header("Authorization", self.auth())
            .header("content-length", length)
            .body(body)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.url))?;
        Self::check(response).await
    }

    /// The cron jobs and the newest scheduled runs.
    pub async fn jobs(&self) -> anyhow::Result<Value> {
        self.get("/api/jobs").await
    }

    /// The newest `limit` admin actions.
    pub async fn audit(&self, limit: usize) -> anyhow::Result<Vec<Value>> {
        Ok(serde_json::from_value(
            self.get(&format!("/api/audit?limit={limit}")).await?,
        )?)
    }
}

/// Whether `url` keeps the admin key from strangers: https, or plain http
/// to this machine.
fn is_private(url: &str) -> bool {
    url.strip_prefix("http://")
        .is_none_or(capstan_protocol::address::is_loopback)
}

#[cfg(test)]
mod tests {
    #[test]
    fn plain_http_is_private_only_to_this_machine() {
        assert!(super::is_private("https://capstan.example.com"));
        assert!(super::is_private("http://127.0.0.1:3210"));
        assert!(super::is_private("http://localhost:3210/"));
        assert!(super::is_private("http://[::1]:3210"));
        assert!(!super::is_private("http://capstan.example.com"));
        assert!(!super::is_private("http://10.0.0.5:3210"));
    }
}
