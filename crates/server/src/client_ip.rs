//! The network source of a request, for the per-source limits and the flood shield: the
//! peer's address, or, when the peer is a proxy the deployment trusts (a load balancer, a CDN
//! edge), the address that proxy reports in `X-Forwarded-For`.
//!
//! The header is read from the right, as nginx's `real_ip_recursive` does: each trusted proxy
//! appends the address it received the request from, so the rightmost address that is not a
//! trusted proxy is the client. Anything left of it was written by the client and is ignored;
//! a header from an untrusted peer is ignored entirely, so nobody can pick their own bucket.
//! A malformed list counts as the proxy's own address: the request shares the proxy's bucket
//! rather than choosing one.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;

use crate::error::ApiError;
use crate::state::AppState;

/// An address block, e.g. `10.0.0.0/8`, `2001:db8::/32` or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressBlock {
    network: IpAddr,
    prefix: u8,
}

impl AddressBlock {
    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for AddressBlock {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network = canonical(
            addr.parse::<IpAddr>()
                .map_err(|_| format!("{s:?} is not an address or address/prefix"))?,
        );
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(AddressBlock { network, prefix })
    }
}

impl std::fmt::Display for AddressBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The client's address for a request from `peer` with these headers, given the trusted
/// proxies (see the module documentation).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[AddressBlock]) -> IpAddr {
    let peer = canonical(peer);
    if !trusted.iter().any(|b| b.contains(peer)) {
        return peer;
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else {
            return peer;
        };
        for item in text.split(',') {
            match item.trim().parse::<IpAddr>() {
                Ok(ip) => hops.push(canonical(ip)),
                Err(_) => return peer,
            }
        }
    }
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        client = hop;
        if !trusted.iter().any(|b| b.contains(hop)) {
            break;
        }
    }
    client
}

/// The request's network source (an axum extractor): [`client_ip`] with the server's
/// configured trusted proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .ok_or_else(|| ApiError::internal("the connection's address is missing"))?;
        Ok(ClientIp(client_ip(
            peer,
            &parts.headers,
            &state.config().trusted_proxies,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn blocks(list: &[&str]) -> Vec<AddressBlock> {
        list.iter().map(|b| b.parse().expect("block")).collect()
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn blocks_parse_and_contain() {
        let b: AddressBlock = "10.0.0.0/8".parse().expect("v4");
        assert!(b.contains(ip("10.255.1.2")));
        assert!(!b.contains(ip("11.0.0.1")));
        assert!(b.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped");
        let b: AddressBlock = "2001:db8::/32".parse().expect("v6");
        assert!(b.contains(ip("2001:db8:1::5")));
        assert!(!b.contains(ip("2001:db9::1")));
        let one: AddressBlock = "192.0.2.7".parse().expect("one address");
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let all: AddressBlock = "0.0.0.0/0".parse().expect("all");
        assert!(all.contains(ip("203.0.113.9")));
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "proxy",
            "10.0.0.0/x",
            "",
        ] {
            assert!(bad.parse::<AddressBlock>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_proxy() {
        let trusted = blocks(&["10.0.0.0/8"]);
        // An untrusted peer cannot choose its bucket.
        assert_eq!(
            client_ip(ip("203.0.113.5"), &headers(&["198.51.100.1"]), &trusted),
            ip("203.0.113.5")
        );
        // No proxies trusted: the header is ignored.
        assert_eq!(
            client_ip(ip("10.0.0.1"), &headers(&["198.51.100.1"]), &[]),
            ip("10.0.0.1")
        );
        // A trusted proxy's report is used.
        assert_eq!(
            client_ip(ip("10.0.0.1"), &headers(&["198.51.100.1"]), &trusted),
            ip("198.51.100.1")
        );
        // No header from a trusted proxy: the proxy itself.
        assert_eq!(
            client_ip(ip("10.0.0.1"), &headers(&[]), &trusted),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client_and_spoofed_hops_are_ignored() {
        let trusted = blocks(&["10.0.0.0/8", "2001:db8::/32"]);
        // The client wrote "1.1.1.1" itself; the edge proxy appended the real address, the
        // inner proxy the edge's.
        let h = headers(&["1.1.1.1, 198.51.100.7, 10.0.0.9"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("198.51.100.7"));
        // Several header lines are one list, in order.
        let h = headers(&["1.1.1.1", "198.51.100.7", "2001:db8::5"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("198.51.100.7"));
        // Every hop trusted: the leftmost.
        let h = headers(&["10.1.1.1, 10.2.2.2"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("10.1.1.1"));
    }

    #[test]
    fn a_malformed_header_counts_as_the_proxy() {
        let trusted = blocks(&["10.0.0.0/8"]);
        for bad in ["198.51.100.7, not-an-address", "", "198.51.100.7,,10.0.0.2"] {
            assert_eq!(
                client_ip(ip("10.0.0.1"), &headers(&[bad]), &trusted),
                ip("10.0.0.1"),
                "{bad:?}"
            );
        }
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"198.51.100.7\xff").expect("opaque bytes"),
        );
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("10.0.0.1"));
    }
}
