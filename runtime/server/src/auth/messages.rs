//! Delivering codes and links: email over SMTP, text messages through the
//! app's webhook, and in development, when no SMTP server is configured, a
//! dev outbox (the server's console and `dev_outbox.jsonl` in the data
//! directory, shown by `capstan outbox`).
//!
//! SMTP is configured by deployment environment variables, so that its
//! password is never in the app's config: `AUTH_SMTP_URL`
//! (`smtps://user:password@host:465`, `smtp://host:587?tls=required` for
//! STARTTLS, or `smtp://host:25` on loopback) and `AUTH_EMAIL_FROM`.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use capstan_host::Environment;
use serde::Serialize;

use super::AuthError;

/// One message to deliver.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// `email` or `sms`.
    pub channel: &'static str,
    pub to: String,
    pub subject: String,
    pub text: String,
    /// For a webhook: the code and link on their own.
    #[serde(skip)]
    pub code: String,
    #[serde(skip)]
    pub url: Option<String>,
}

/// Where messages go when nothing else is configured.
#[derive(Debug)]
pub enum Fallback {
    /// `capstan dev`: the console and a file.
    DevOutbox(PathBuf),
    /// A production server: refuse, saying what to configure.
    Refuse,
}

#[derive(Debug)]
pub struct Messenger {
    fallback: Fallback,
    /// Appends to the outbox one at a time.
    outbox: Mutex<()>,
    http: reqwest::Client,
}

impl Messenger {
    pub fn new(fallback: Fallback) -> Messenger {
        Messenger {
            fallback,
            outbox: Mutex::new(()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
        }
    }

    /// Sends an email with the deployment's SMTP settings.
    pub async fn email(
        &self,
        environment: &Environment,
        from: Option<&str>,
        message: Message,
    ) -> Result<(), AuthError> {
        let Some(url) = environment.get("AUTH_SMTP_URL").filter(|u| !u.is_empty()) else {
            return self.fall_back(message);
        };
        let from = from
            .map(str::to_owned)
            .or_else(|| environment.get("AUTH_EMAIL_FROM").cloned())
            .ok_or_else(|| {
                AuthError::internal("email sign-in needs a sender: set AUTH_EMAIL_FROM")
            })?;
        send_smtp(url, &from, &message).await
    }

    /// Sends a text message through `webhook`, with `key` as its bearer
    /// token.
    pub async fn sms(
        &self,
        webhook: &str,
        key: Option<&str>,
        message: Message,
    ) -> Result<(), AuthError> {
        let mut request = self.http.post(webhook).json(&serde_json::json!({
            "to": message.to,
            "code": message.code,
            "url": message.url,
            "message": message.text,
        }));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|e| {
            AuthError::internal(format!(
                "the SMS webhook could not be reached: {}",
                e.without_url()
            ))
        })?;
        if !response.status().is_success() {
            return Err(AuthError::internal(format!(
                "the SMS webhook answered {}",
                response.status()
            )));
        }
        Ok(())
    }

    fn fall_back(&self, message: Message) -> Result<(), AuthError> {
        match &self.fallback {
            Fallback::Refuse => Err(AuthError::internal(
                "email sign-in is on but no SMTP server is configured: set AUTH_SMTP_URL and AUTH_EMAIL_FROM",
            )),
            Fallback::DevOutbox(path) => {
                use std::io::Write as _;
                tracing::info!(
                    target: "capstan::outbox",
                    "message for {} (dev outbox; no AUTH_SMTP_URL set):\n{}\n{}",
                    message.to,
                    message.subject,
                    message.text
                );
                let _turn = self.outbox.lock().unwrap_or_else(|e| e.into_inner());
                let line = serde_json::to_string(&message).unwrap_or_default();
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .and_then(|mut file| writeln!(file, "{line}"))
                    .map_err(|e| AuthError::internal(format!("cannot write the dev outbox: {e}")))
            }
        }
    }
}

/// Sends `message` through the SMTP server at `url`.
async fn send_smtp(url: &str, from: &str, message: &Message) -> Result<(), AuthError> {
    use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
    let from = from
        .parse::<lettre::message::Mailbox>()
        .map_err(|e| AuthError::internal(format!("AUTH_EMAIL_FROM is not an address: {e}")))?;
    let to = message
        .to
        .parse::<lettre::message::Mailbox>()
        .map_err(|_| AuthError::refused("InvalidEmail", "That is not an email address"))?;
    let email = lettre::Message::builder()
        .from(from)
        .to(to)
        .subject(&message.subject)
        .header(lettre::message::header::ContentType::TEXT_PLAIN)
        .body(message.text.clone())
        .map_err(|e| AuthError::internal(format!("cannot build the email: {e}")))?;
    // The URL may hold the SMTP password: errors never show it.
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .map_err(|_| AuthError::internal("AUTH_SMTP_URL is not a valid smtp:// or smtps:// URL"))?
        .timeout(Some(Duration::from_secs(15)))
        .build();
    transport
        .send(email)
        .await
        .map(|_| ())
        .map_err(|e| AuthError::internal(format!("the SMTP server refused the message: {e}")))
}
