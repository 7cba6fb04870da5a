//! What a client sends (`specs/sync-protocol.md` §2).

use serde::{Deserialize, Serialize};

use super::{QueryId, RequestId};
use crate::path::FunctionPath;
use crate::timestamp::Timestamp;

/// A message from the client. Arguments are kept as the JSON the client
/// sent (`[{…}]`, or a bare object): the server checks and normalises them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ClientMessage {
    /// The first message on a socket (though a client may leave it out).
    #[serde(rename_all = "camelCase")]
    Connect {
        /// The client object's id, kept across its sockets: with a
        /// request id it keys a mutation's exactly-once record.
        session_id: String,
        #[serde(default)]
        connection_count: u32,
        /// Why the previous socket closed; `null` after the client itself
        /// restarted it.
        #[serde(default)]
        last_close_reason: Option<String>,
        /// The newest timestamp the client has seen.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_observed_timestamp: Option<Timestamp>,
        /// The client's clock, in milliseconds since the Unix epoch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_ts: Option<f64>,
    },
    #[serde(rename_all = "camelCase")]
    ModifyQuerySet {
        base_version: u32,
        new_version: u32,
        modifications: Vec<QuerySetModification>,
    },
    Mutation(FunctionCall),
    Action(FunctionCall),
    #[serde(rename_all = "camelCase")]
    Authenticate {
        base_version: u32,
        #[serde(flatten)]
        token: AuthToken,
    },
    /// Telemetry: read and ignored.
    #[serde(rename_all = "camelCase")]
    Event {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_type: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event: Option<serde_json::Value>,
    },
}

impl ClientMessage {
    /// Reads one text frame.
    pub fn from_json(text: &str) -> Result<ClientMessage, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The text of the frame.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a client message always serialises")
    }
}

/// A Mutation or an Action: which function, with what.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionCall {
    pub request_id: RequestId,
    /// Canonicalised when read: clients send mutation and action paths as
    /// the app wrote them.
    pub udf_path: FunctionPath,
    pub args: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_path: Option<String>,
}

/// The credentials of an Authenticate message. `Debug` names the kind only:
/// tokens and keys never reach logs.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "tokenType")]
pub enum AuthToken {
    /// An OpenID Connect or custom JWT.
    User { value: String },
    /// The admin key, optionally acting as the user `impersonating` (Convex's
    /// `UserIdentityAttributes`).
    Admin {
        value: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        impersonating: Option<serde_json::Value>,
    },
    /// Signed out.
    None,
}

impl std::fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthToken::User { .. } => f.write_str("User(…)"),
            AuthToken::Admin { impersonating, .. } => f
                .debug_struct("Admin")
                .field("impersonating", &impersonating.is_some())
                .finish_non_exhaustive(),
            AuthToken::None => f.write_str("None"),
        }
    }
}

/// One change of a ModifyQuerySet, applied in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum QuerySetModification {
    #[serde(rename_all = "camelCase")]
    Add {
        query_id: QueryId,
        udf_path: FunctionPath,
        args: serde_json::Value,
        /// The last journal the server sent for the query, on a re-subscribe.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        journal: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        component_path: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    Remove { query_id: QueryId },
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_read_as_the_convex_client_writes_them() {
        let connect = ClientMessage::from_json(
            r#"{"connectionCount":0,"lastCloseReason":"InitialConnect","clientTs":1795660686939,
                "type":"Connect","sessionId":"ae227064-c9ab-42e4-87d3-46e8d21e3e41"}"#,
        )
        .expect("Connect");
        assert!(matches!(
            connect,
            ClientMessage::Connect {
                connection_count: 0,
                max_observed_timestamp: None,
                ..
            }
        ));
        let modify = ClientMessage::from_json(
            r#"{"type":"ModifyQuerySet","baseVersion":1,"newVersion":2,"modifications":[
                {"type":"Add","queryId":0,"udfPath":"counter:get","args":[{}],"journal":null},
                {"type":"Remove","queryId":7}]}"#,
        )
        .expect("ModifyQuerySet");
        let ClientMessage::ModifyQuerySet { modifications, .. } = modify else {
            panic!("{modify:?}");
        };
        assert_eq!(
            modifications[1],
            QuerySetModification::Remove {
                query_id: QueryId(7)
            }
        );
        // Mutation paths arrive as written and are canonicalised on reading.
        let mutation = ClientMessage::from_json(
            r#"{"type":"Mutation","requestId":3,"udfPath":"dir/mod.js","args":[{}]}"#,
        )
        .expect("Mutation");
        let ClientMessage::Mutation(call) = &mutation else {
            panic!("{mutation:?}");
        };
        assert_eq!(call.udf_path.as_str(), "dir/mod:default");
        let event =
            r#"{"type":"Event","eventType":"NetworkRecoveryReconnect","event":{"timeSavedMs":1}}"#;
        assert!(ClientMessage::from_json(event).is_ok());
        assert!(ClientMessage::from_json(r#"{"type":"Nope"}"#).is_err());
    }

    #[test]
    fn messages_written_read_back_the_same() {
        let messages = [
            ClientMessage::Connect {
                session_id: "s".into(),
                connection_count: 2,
                last_close_reason: None,
                max_observed_timestamp: Some(Timestamp::new(7)),
                client_ts: Some(1.5),
            },
            ClientMessage::Authenticate {
                base_version: 1,
                token: AuthToken::Admin {
                    value: "k".into(),
                    impersonating: Some(json!({"subject": "s"})),
                },
            },
            ClientMessage::Authenticate {
                base_version: 2,
                token: AuthToken::None,
            },
            ClientMessage::Action(FunctionCall {
                request_id: RequestId(4),
                udf_path: FunctionPath::parse("a:b"),
                args: json!([{"x": 1}]),
                component_path: None,
            }),
        ];
        for message in messages {
            let text = message.to_json();
            assert_eq!(ClientMessage::from_json(&text).expect(&text), message);
        }
        let text = ClientMessage::Authenticate {
            base_version: 0,
            token: AuthToken::User {
                value: "eyJ.x.y".into(),
            },
        }
        .to_json();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).expect("JSON"),
            json!({"type": "Authenticate", "baseVersion": 0, "tokenType": "User", "value": "eyJ.x.y"})
        );
    }

    #[test]
    fn tokens_never_show_in_debug_output() {
        let message = ClientMessage::from_json(
            r#"{"type":"Authenticate","baseVersion":0,"tokenType":"User","value":"eyJsecret.token.sig"}"#,
        )
        .expect("Authenticate");
        assert!(!format!("{message:?}").contains("secret"), "{message:?}");
        let admin = ClientMessage::from_json(
            r#"{"type":"Authenticate","baseVersion":0,"tokenType":"Admin","value":"capstan_admin_secret"}"#,
        )
        .expect("Authenticate");
        assert!(!format!("{admin:?}").contains("secret"), "{admin:?}");
    }
}
