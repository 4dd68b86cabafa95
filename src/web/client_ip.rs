//! The client's address of a web request: the peer, unless the peer is one of the configured
//! `trusted_proxies`, in which case `X-Forwarded-For` is read from the right, skipping
//! trusted hops, to the first address not trusted. A client can write anything into the
//! header, so only what trusted proxies appended is believed.

use std::net::IpAddr;

use ipnet::IpNet;

/// The client address of a request from `peer` carrying the `X-Forwarded-For` values
/// `forwarded` (every header line, in order).
pub fn client_ip<'a>(
    peer: IpAddr,
    forwarded: impl IntoIterator<Item = &'a str>,
    trusted: &[IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer.to_canonical();
    if !is_trusted(&client) {
        return client;
    }
    let hops: Vec<&str> = forwarded
        .into_iter()
        .flat_map(|line| line.split(','))
        .collect();
    for hop in hops.into_iter().rev() {
        if !is_trusted(&client) {
            break;
        }
        match parse_hop(hop) {
            Some(ip) => client = ip.to_canonical(),
            // A hop that is not an address: believe nothing left of it.
            None => break,
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, possibly `[v6]` or with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Ok(addr) = hop.parse::<std::net::SocketAddr>() {
        return Some(addr.ip());
    }
    hop.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|ip| ip.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted(list: &[&str]) -> Vec<IpNet> {
        list.iter()
            .map(|t| {
                t.parse()
                    .unwrap_or_else(|_| IpNet::from(t.parse::<IpAddr>().unwrap()))
            })
            .collect()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let t = trusted(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip("203.0.113.9"), ["1.2.3.4"], &t),
            ip("203.0.113.9")
        );
        assert_eq!(client_ip(ip("203.0.113.9"), [], &[]), ip("203.0.113.9"));
    }

    #[test]
    fn a_trusted_peer_is_skipped_to_the_first_untrusted_hop_from_the_right() {
        let t = trusted(&["10.0.0.0/8", "192.0.2.7"]);
        // The client forged "6.6.6.6"; the proxies appended the real one and themselves.
        assert_eq!(
            client_ip(ip("10.0.0.2"), ["6.6.6.6, 198.51.100.1", "192.0.2.7"], &t),
            ip("198.51.100.1")
        );
        // Every hop trusted: the left-most.
        assert_eq!(client_ip(ip("10.0.0.2"), ["10.1.1.1"], &t), ip("10.1.1.1"));
        // No header: the proxy itself.
        assert_eq!(client_ip(ip("10.0.0.2"), [], &t), ip("10.0.0.2"));
        // Garbage stops the walk at the last trusted address.
        assert_eq!(
            client_ip(ip("10.0.0.2"), ["1.2.3.4, unknown"], &t),
            ip("10.0.0.2")
        );
        assert_eq!(
            client_ip(ip("10.0.0.2"), ["[2001:db8::1]:443"], &t),
            ip("2001:db8::1")
        );
        // An IPv4-mapped peer (dual-stack listener) is its IPv4 address.
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.2"), ["198.51.100.1"], &t),
            ip("198.51.100.1")
        );
    }
}
