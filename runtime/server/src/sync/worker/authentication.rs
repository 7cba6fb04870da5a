//! Authenticate: the socket's identity replaced (every query subscribed
//! again under it) or refused; and a token that expires while the socket
//! holds it, found before anything runs for the client.

use capstan_protocol::Identity;
use capstan_protocol::sync::{AuthError, AuthToken, QueryId, ServerMessage};

use super::Worker;
use super::close::Close;
use crate::error::Error;

impl Worker {
    pub(super) async fn authenticate(
        &mut self,
        base_version: u32,
        token: AuthToken,
    ) -> Result<(), Close> {
        if base_version != self.identity_version {
            return Err(Close::out_of_sync(format!(
                "identity version {base_version} does not follow {}",
                self.identity_version
            )));
        }
        let identity = match token {
            AuthToken::None => Identity::Anonymous,
            AuthToken::Admin {
                value,
                impersonating,
            } => match self
                .context
                .credentials
                .admin(&value, impersonating.as_ref())
            {
                Ok(identity) => identity,
                Err(error) => return self.auth_error(base_version, &error).await,
            },
            AuthToken::User { value } => {
                match self.context.credentials.verify_user_token(&value).await {
                    Ok(identity) => identity,
                    Err(error) => return self.auth_error(base_version, &error).await,
                }
            }
        };
        self.identity_version = base_version + 1;
        // Stored even when equal: a refreshed token of the same user carries
        // a later expiry.
        let changed = identity != self.identity;
        self.identity = identity;
        if changed {
            // Every query runs again under the new identity.
            let ids: Vec<QueryId> = self.queries.keys().copied().collect();
            for id in ids {
                let (path, args) = {
                    let query = &self.queries[&id];
                    (query.path.clone(), query.args.clone())
                };
                let handle = self.subscribe(&path, &args).await?;
                let query = self.queries.get_mut(&id).expect("present");
                self.context
                    .subscriptions
                    .unsubscribe(query.handle, &self.subscriber)
                    .await;
                query.handle = handle;
            }
        }
        self.transition(true).await
    }

    /// AuthError, then close without a code: the client fetches a new
    /// token and reconnects.
    pub(super) async fn auth_error(&self, base_version: u32, error: &Error) -> Result<(), Close> {
        self.send(ServerMessage::AuthError(AuthError {
            error: error.public_message().to_owned(),
            base_version,
            auth_update_attempted: true,
        }))
        .await?;
        Err(Close::after_auth_error())
    }

    /// Before running anything for the client: a user token that has
    /// expired on this socket ends it with AuthError (not an answer to an
    /// Authenticate), so the client refreshes and reconnects.
    pub(super) async fn check_expiry(&self) -> Result<(), Close> {
        let Some(seconds) = self.context.credentials.expired(&self.identity) else {
            return Ok(());
        };
        self.send(ServerMessage::AuthError(AuthError {
            error: format!("Token expired {seconds} seconds ago"),
            base_version: self.identity_version,
            auth_update_attempted: false,
        }))
        .await?;
        Err(Close::after_auth_error())
    }
}
