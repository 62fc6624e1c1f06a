//! The per-process flood shield: requests per network address, counted in this process's
//! memory, in front of everything else. It stops a flood before it costs a database round trip
//! or a token lookup; the limits that matter for fairness (uploads, matches, checks,
//! registrations) are the shared ones in the database.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::Shield;
use crate::error::ApiError;
use crate::state::AppState;

/// How often (in checks) addresses whose allowance is full again are forgotten, so a flood of
/// many addresses does not keep memory for ever.
const FORGET_EVERY: u64 = 4_096;

/// Requests per address in this process.
pub struct FloodShield {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
    checks: AtomicU64,
}

impl FloodShield {
    /// `shield.per_second` requests a second per address, `shield.burst` at once.
    pub fn new(shield: Shield) -> FloodShield {
        let per_second = NonZeroU32::new(shield.per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(shield.burst).unwrap_or(NonZeroU32::MIN);
        FloodShield {
            limiter: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
        }
    }

    /// `Ok` if a request from `ip` may pass now; else how long until one may.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % FORGET_EVERY == FORGET_EVERY - 1 {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// The middleware: 429 with `Retry-After` for an address over its allowance. Health checks
/// pass always (a load balancer polls them).
pub async fn shield(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path();
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>();
    if let (Some(ConnectInfo(peer)), false) = (peer, path == "/healthz" || path == "/readyz") {
        // Behind a trusted proxy, the client it reports, not the proxy (every client would
        // share one allowance otherwise).
        let source = crate::client_ip::client_ip(
            peer.ip(),
            request.headers(),
            &state.config().trusted_proxies,
        );
        if let Err(wait) = state.shield().check(source) {
            return ApiError::rate_limited("requests from this address", wait).into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_burst_and_then_waits_others_do_not() {
        let shield = FloodShield::new(Shield {
            per_second: 1,
            burst: 3,
        });
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "::1".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(shield.check(a), Ok(()));
        }
        let wait = shield.check(a).expect_err("over the burst");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert_eq!(shield.check(b), Ok(()));
    }
}
