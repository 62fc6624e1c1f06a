//! Prometheus metrics at `/metrics`: requests and latencies per route, upload outcomes, checks,
//! and the review queue's length. No label ever names an account, a device, a case or an
//! attachment: per-account labels would put who uploaded what, and who was held, into the
//! monitoring system (G1, G3).

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A route and the class of its status (`2xx`, `4xx`, ...).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route's pattern (`/v1/attachments/{attachment_id}`), never the path itself.
    pub route: String,
    /// `2xx`, `3xx`, `4xx` or `5xx`.
    pub status: String,
}

/// A route.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route's pattern.
    pub route: String,
}

/// An outcome (`delivered`, `held`, ...).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// The outcome.
    pub outcome: String,
}

/// The server's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    uploads: Family<OutcomeLabels, Counter>,
    checks: Family<OutcomeLabels, Counter>,
    campaigns: Counter,
    queue: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("hashguard");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status class",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            // 0.5 ms to about 8 s.
            Histogram::new(exponential_buckets(0.0005, 2.0, 15))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to answer, by route",
            latency.clone(),
        );
        let uploads = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "uploads",
            "Uploads by outcome (delivered, accepted, held, stale, rejected, limited)",
            uploads.clone(),
        );
        let checks = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "consented_checks",
            "Automatic checks by outcome (released, blocked_for_review, refused)",
            checks.clone(),
        );
        let campaigns = Counter::default();
        registry.register(
            "campaigns_flagged",
            "Crafted-collision campaigns flagged (one image released by the checks of many accounts)",
            campaigns.clone(),
        );
        let queue = Gauge::default();
        registry.register(
            "review_queue_cases",
            "Cases waiting for review, at the last scrape",
            queue.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            requests,
            latency,
            uploads,
            checks,
            campaigns,
            queue,
        }
    }

    /// Records one answered request.
    pub fn request(&self, route: &str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                status: format!("{}xx", status / 100),
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts an upload outcome.
    pub fn upload(&self, outcome: &str) {
        self.uploads
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Counts a check outcome.
    pub fn check(&self, outcome: &str) {
        self.checks
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Counts a flagged campaign.
    pub fn campaign_flagged(&self) {
        self.campaigns.inc();
    }

    /// The text exposition, with the queue length set to `queue`.
    pub fn render(&self, queue: i64) -> String {
        self.queue.set(queue);
        let mut out = String::new();
        match self.registry.lock() {
            Ok(registry) => {
                if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
                    out.clear();
                }
            }
            Err(_) => out.clear(),
        }
        out
    }
}
