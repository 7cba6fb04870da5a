//! Every tunable of the server, with its default and the reason for it,
//! carried in [`crate::ServerConfig`]. The bounds of one guest call are the
//! host's ([`capstan_host::HostLimits`]); the store's are its own
//! ([`capstan_store::Limits`]).

use std::time::Duration;

use capstan_host::HostLimits;
use serde::Deserialize;

/// Bounds on calls, requests and mutations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// Top-level function calls running at once; more wait. Nested calls
    /// run under their action's place, so an action never waits for its
    /// own children.
    pub max_concurrent_calls: usize,
    /// Calls one caller (a signed-in user, or an anonymous client's
    /// address) runs at once; its further calls wait for its own.
    pub max_calls_per_caller: usize,
    /// Calls waiting for a place, beyond which calls are refused (503)
    /// rather than queued.
    pub max_waiting_calls: usize,
    /// Actions among them: an action may hold its place for its whole time
    /// limit, so actions alone cannot take every place.
    pub max_concurrent_actions: usize,
    /// How long a run waits for a free instance of the engine (every run
    /// takes one: top-level, nested and a subscription's) before it is
    /// refused as overload. A subscription refused so is retried.
    pub instance_wait: Duration,
    /// How deep actions may call actions. Every nested call also ends by
    /// its outermost action's deadline.
    pub max_action_depth: u32,
    /// Largest body of a function call: the largest arguments the host
    /// takes, and room for the envelope around them.
    pub max_request_body: usize,
    /// Largest deploy: every component, base64.
    pub max_deploy_body: usize,
    /// Largest body of the other admin requests (a variable's value).
    pub max_admin_body: usize,
    /// Bytes of request bodies all requests together may be reading at
    /// once (each takes room for its declared length, or its limit); a
    /// request that finds no room is refused (503), not queued.
    pub request_body_budget: usize,
    /// How much more of a too large body is read and dropped before the
    /// 413 goes out: a client still sending then receives the answer, where
    /// closing on unread data would reset the connection under it.
    pub body_drain: usize,
    /// Environment variables: the longest name and the largest value. They
    /// are read on every call that asks, so they stay small.
    pub max_variable_name: usize,
    pub max_variable_value: usize,
    /// How long a mutation keeps retrying on conflicts before it gives up.
    pub mutation_retry_deadline: Duration,
    /// Conflicts after which a mutation queues for its next attempts, so
    /// that a hot document serves its writers in turn instead of starving
    /// some.
    pub conflicts_before_queueing: u32,
    /// The longest pause between two attempts of a conflicting mutation;
    /// pauses grow exponentially (with full jitter) up to it.
    pub max_mutation_backoff: Duration,
    /// Exactly-once runs remembered before those no mutation runs under any
    /// more are swept.
    pub running_receipts: usize,
    /// A function whose runs average less than this is quick: its query
    /// runs on the thread that asks for it, with no hand-off.
    pub quick_run: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_concurrent_calls: 64,
            max_concurrent_actions: 32,
            max_waiting_calls: 1024,
            max_calls_per_caller: 16,
            instance_wait: Duration::from_secs(10),
            max_action_depth: 8,
            max_request_body: HostLimits::default().max_args + (64 << 10),
            max_deploy_body: 256 << 20,
            max_admin_body: 64 << 10,
            request_body_budget: 512 << 20,
            body_drain: 16 << 20,
            max_variable_name: 64,
            max_variable_value: 8 << 10,
            mutation_retry_deadline: Duration::from_secs(10),
            conflicts_before_queueing: 3,
            max_mutation_backoff: Duration::from_millis(20),
            running_receipts: 4096,
            quick_run: Duration::from_millis(1),
        }
    }
}

/// Bounds on sockets, each reported to the client as a close reason, on
/// the results kept for queries no socket holds any more, and on what the
/// subscription manager remembers. The fields read from a configuration
/// file's `[sync]` are checked there ([`crate::config`]); the others are
/// set in code only.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncLimits {
    pub max_sockets: usize,
    pub max_queries_per_socket: usize,
    /// Largest inbound WebSocket message, in bytes.
    pub max_message_size: usize,
    /// Actions one socket runs at once; while it has this many, the socket's
    /// next messages wait unread.
    pub max_actions_in_flight: usize,
    /// A Ping is sent after this long without any other message: the
    /// `convex` client gives up on a server silent for 60 s.
    #[serde(with = "seconds")]
    pub ping_interval: Duration,
    /// A socket from which nothing arrives for this long is closed. The
    /// server pings every `ping_interval`, and browsers and other clients
    /// answer pings by themselves, so only a client that stopped reading
    /// (or vanished) stays silent.
    #[serde(with = "seconds")]
    pub idle_timeout: Duration,
    /// When the last socket drops a query, its result is kept (at most this
    /// many, the least recently dropped go first) until a commit writes
    /// something it read, so subscribing to it again is answered without
    /// running it. 0 keeps none.
    pub idle_queries: usize,
    /// The most bytes of results kept for idle queries.
    pub idle_query_bytes: usize,
    /// The most bytes of live results one socket holds (and so the
    /// largest Transition built for it); a query whose result would pass
    /// it fails with a message saying so, until the socket holds less.
    pub max_socket_result_bytes: usize,
    /// The most bytes of live results all sockets together hold.
    pub max_live_result_bytes: usize,
    /// A query nobody holds yet runs on the socket that asks for it; when
    /// commits keep making those runs stale, after this many it is left to
    /// the manager's next refresh. 0 leaves every new query to the manager.
    pub socket_runs: usize,
    /// Transitions longer than this go out as TransitionChunks (the
    /// `convex` client's own threshold).
    #[serde(skip)]
    pub transition_chunk: usize,
    /// Frames read from a socket before its worker catches up.
    #[serde(skip)]
    pub inbound_queue: usize,
    /// Frames queued towards a socket before its worker waits for the send
    /// loop: a slow client slows its own worker, nobody else's.
    #[serde(skip)]
    pub outbound_queue: usize,
    /// Mutations a socket has sent that wait behind the one running; while
    /// the queue is full, the socket's next messages wait unread.
    #[serde(skip)]
    pub mutation_queue: usize,
    /// Bytes of arguments a socket's queued mutations may hold together;
    /// while they hold more, its next messages wait unread.
    #[serde(skip)]
    pub queued_mutation_bytes: usize,
    /// Commits the manager remembers for checking results computed on
    /// sockets, and the most document writes they may hold together; a
    /// result computed before the oldest is not taken.
    #[serde(skip)]
    pub history_commits: usize,
    #[serde(skip)]
    pub history_writes: usize,
}

impl Default for SyncLimits {
    fn default() -> Self {
        SyncLimits {
            max_sockets: 50_000,
            max_queries_per_socket: 4_096,
            max_message_size: 8 << 20,
            max_actions_in_flight: 8,
            ping_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
            idle_queries: 1_000,
            idle_query_bytes: 64 << 20,
            max_socket_result_bytes: 32 << 20,
            max_live_result_bytes: 2 << 30,
            socket_runs: 3,
            transition_chunk: 5_000_000,
            inbound_queue: 2,
            outbound_queue: 64,
            mutation_queue: 64,
            queued_mutation_bytes: 16 << 20,
            history_commits: 1024,
            history_writes: 64 * 1024,
        }
    }
}

/// What the HTTP front enforces: which browsers may call, whose
/// forwarded addresses are believed, how many connections one client
/// address may hold, and how long a request may take to arrive. Read from
/// a configuration file's `[http]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpLimits {
    /// Origins browsers may call the function API from, such as
    /// `https://app.example.com`. Empty: any origin, and never with
    /// credentials (Convex clients send tokens in a header, not cookies).
    /// The admin API answers no browser whatever this says; sockets from
    /// an origin not listed are refused when the list is not empty.
    pub allowed_origins: Vec<String>,
    /// Proxies (addresses or CIDR ranges) whose `X-Forwarded-For` names
    /// the client; others' is ignored.
    pub trusted_proxies: Vec<String>,
    /// Connections one client address may hold at once (trusted proxies
    /// are not counted; their clients are, by socket).
    pub max_connections_per_ip: usize,
    /// WebSockets one client address may hold at once.
    pub max_sockets_per_ip: usize,
    /// A request's headers must arrive within this; an idle keep-alive
    /// connection is closed after it.
    #[serde(with = "seconds")]
    pub header_timeout: Duration,
    /// A request body must arrive whole within this (a deploy's, four
    /// times this).
    #[serde(with = "seconds")]
    pub body_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            max_connections_per_ip: 512,
            max_sockets_per_ip: 256,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
        }
    }
}

mod seconds {
    use std::time::Duration;

    use serde::Deserialize;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let seconds = f64::deserialize(d)?;
        if !(seconds > 0.0 && seconds < 86_400.0) {
            return Err(serde::de::Error::custom(
                "a time must be between 0 and 86400 seconds",
            ));
        }
        Ok(Duration::from_secs_f64(seconds))
    }
}
