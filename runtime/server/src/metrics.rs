//! What an operator scrapes from `GET /metrics` (Prometheus text format,
//! admin key required): calls by function, kind and outcome with their
//! latency, commits and conflicts, sockets, subscriptions and their
//! re-runs, the call queue and the instance pool, and every refusal by
//! reason. Counters are bumped where things happen; gauges are read from
//! their owners when scraped.

use std::sync::Arc;
use std::time::Duration;

use capstan_protocol::FunctionKind;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The server's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

struct Inner {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    latency: Family<KindLabels, Histogram>,
    commits: Counter,
    conflicts: Counter,
    refusals: Family<ReasonLabels, Counter>,
    /// Set when scraped.
    pub(crate) gauges: Gauges,
}

/// Values read from their owners at each scrape.
#[derive(Default)]
pub(crate) struct Gauges {
    pub sockets: Gauge,
    pub subscriptions: Gauge,
    pub query_runs: Gauge,
    pub calls_running: Gauge,
    pub calls_waiting: Gauge,
    pub instances_in_use: Gauge,
    pub write_log_commits: Gauge,
    pub write_log_bytes: Gauge,
    pub scheduled_pending: Gauge,
    pub scheduled_running: Gauge,
    pub leader: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    function: String,
    kind: Kind,
    outcome: Outcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: Kind,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum Kind {
    query,
    mutation,
    action,
}

/// How a call ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Outcome {
    /// It returned a value.
    success,
    /// The function failed (its error, a limit it met).
    failure,
    /// The server could not run it.
    fault,
}

impl From<FunctionKind> for Kind {
    fn from(kind: FunctionKind) -> Kind {
        match kind {
            FunctionKind::Query => Kind::query,
            FunctionKind::Mutation => Kind::mutation,
            FunctionKind::Action => Kind::action,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("capstan");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "calls",
            "Function calls, by function, kind and outcome",
            calls.clone(),
        );
        let latency = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            // 50 µs to about 107 s.
            Histogram::new(exponential_buckets(0.000_05, 2.0, 22))
        });
        registry.register(
            "call_duration_seconds",
            "How long function calls took, by kind",
            latency.clone(),
        );
        let commits = Counter::default();
        registry.register("commits", "Mutations committed", commits.clone());
        let conflicts = Counter::default();
        registry.register(
            "commit_conflicts",
            "Mutation attempts that conflicted and were retried",
            conflicts.clone(),
        );
        let refusals = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "refusals",
            "Requests, connections and calls refused by a limit or a budget, by reason",
            refusals.clone(),
        );
        let gauges = Gauges::default();
        for (name, help, gauge) in [
            ("sockets", "Open WebSocket connections", &gauges.sockets),
            (
                "subscriptions",
                "Live queries held (shared ones once)",
                &gauges.subscriptions,
            ),
            (
                "query_runs",
                "Runs of subscribed queries since start",
                &gauges.query_runs,
            ),
            (
                "calls_running",
                "Top-level calls admitted and running",
                &gauges.calls_running,
            ),
            (
                "calls_waiting",
                "Top-level calls waiting for admission",
                &gauges.calls_waiting,
            ),
            (
                "instances_in_use",
                "Engine instances in use",
                &gauges.instances_in_use,
            ),
            (
                "write_log_commits",
                "Recent commits the store keeps in memory",
                &gauges.write_log_commits,
            ),
            (
                "write_log_bytes",
                "Bytes of the recent commits the store keeps in memory",
                &gauges.write_log_bytes,
            ),
            (
                "scheduled_pending",
                "Scheduled runs waiting, as the scheduler holds them",
                &gauges.scheduled_pending,
            ),
            (
                "scheduled_running",
                "Scheduled runs (and cron runs) running",
                &gauges.scheduled_running,
            ),
            (
                "leader",
                "1 on the node that runs the work done once across nodes (collection, the scheduler, crons); always 1 with one node",
                &gauges.leader,
            ),
        ] {
            registry.register(name, help, gauge.clone());
        }
        Metrics {
            inner: Arc::new(Inner {
                registry,
                calls,
                latency,
                commits,
                conflicts,
                refusals,
                gauges,
            }),
        }
    }

    /// A call to `function` ended with `outcome` after `took`.
    pub fn call(&self, function: &str, kind: FunctionKind, outcome: Outcome, took: Duration) {
        let kind = Kind::from(kind);
        self.inner
            .calls
            .get_or_create(&CallLabels {
                function: function.to_owned(),
                kind,
                outcome,
            })
            .inc();
        self.inner
            .latency
            .get_or_create(&KindLabels { kind })
            .observe(took.as_secs_f64());
    }

    pub fn committed(&self) {
        self.inner.commits.inc();
    }

    pub fn conflicted(&self) {
        self.inner.conflicts.inc();
    }

    /// Something was refused by the limit or budget `reason`.
    pub fn refused(&self, reason: &'static str) {
        self.inner
            .refusals
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub(crate) fn gauges(&self) -> &Gauges {
        &self.inner.gauges
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.inner.registry);
        text
    }
}
