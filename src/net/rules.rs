//! Where scripts may send requests: the `[http] allow` and `deny` rules and the address
//! classes refused by default (loopback, private, link-local, unspecified, multicast). Pure:
//! no I/O, so the rules are tested without a network.

use std::net::IpAddr;

use url::{Host, Url};

/// What a rule names: one host, every subdomain of a suffix, or one IP address.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// `api.example.com` (lower case).
    Name(String),
    /// `*.example.com`: any name ending in `.example.com` (not `example.com` itself).
    Suffix(String),
    /// `10.0.0.5`, `::1`.
    Ip(IpAddr),
}

/// One `allow` or `deny` entry: `host`, `host:port`, `*.suffix`, an IP or `[v6]:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    pattern: Pattern,
    port: Option<u16>,
    /// As written, to name the rule in a refusal.
    text: String,
}

/// Why a rule could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{text}` is not a host, host:port, *.suffix or IP address: {reason}")]
pub struct RuleError {
    text: String,
    reason: &'static str,
}

impl std::str::FromStr for HostRule {
    type Err = RuleError;

    fn from_str(text: &str) -> Result<HostRule, RuleError> {
        let fail = |reason| RuleError {
            text: text.to_string(),
            reason,
        };
        let lower = text.trim().to_ascii_lowercase();
        if lower.is_empty() {
            return Err(fail("empty"));
        }
        let port_of = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| fail("the port is not a number"))
        };
        let (host, port) = if let Some(rest) = lower.strip_prefix('[') {
            let (ip, after) = rest.split_once(']').ok_or(fail("no closing ]"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(port_of(p)?),
                None if after.is_empty() => None,
                None => return Err(fail("unexpected text after ]")),
            };
            (ip.to_string(), port)
        } else if lower.parse::<IpAddr>().is_ok() {
            (lower.clone(), None)
        } else {
            match lower.rsplit_once(':') {
                Some((host, p)) => (host.to_string(), Some(port_of(p)?)),
                None => (lower.clone(), None),
            }
        };
        let pattern = if let Ok(ip) = host.parse::<IpAddr>() {
            Pattern::Ip(ip)
        } else if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(fail("a wildcard is `*.` followed by a domain"));
            }
            Pattern::Suffix(format!(".{suffix}"))
        } else {
            if host.contains(['*', '/', ' ', '@']) {
                return Err(fail("a host name cannot contain *, /, @ or spaces"));
            }
            Pattern::Name(host.trim_end_matches('.').to_string())
        };
        Ok(HostRule {
            pattern,
            port,
            text: text.trim().to_string(),
        })
    }
}

impl HostRule {
    /// The rule as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    fn port_matches(&self, port: Option<u16>) -> bool {
        match (self.port, port) {
            (None, _) => true,
            (Some(want), Some(port)) => want == port,
            (Some(_), None) => false,
        }
    }

    fn name_matches(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.');
        match &self.pattern {
            Pattern::Name(n) => n.eq_ignore_ascii_case(name),
            Pattern::Suffix(s) => {
                name.len() > s.len() && name.to_ascii_lowercase().ends_with(s.as_str())
            }
            Pattern::Ip(_) => false,
        }
    }

    /// Whether the rule covers a URL's host and port.
    fn matches_host(&self, host: &Host<&str>, port: u16) -> bool {
        if !self.port_matches(Some(port)) {
            return false;
        }
        match host {
            Host::Domain(name) => self.name_matches(name),
            Host::Ipv4(ip) => self.pattern == Pattern::Ip(IpAddr::V4(*ip)),
            Host::Ipv6(ip) => self.pattern == Pattern::Ip(IpAddr::V6(*ip)),
        }
    }
}

/// Why an address is not public, or `None` when it is.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("a loopback address")
            } else if v4.is_unspecified() || a == 0 {
                Some("an unspecified address")
            } else if v4.is_private() {
                Some("a private address")
            } else if v4.is_link_local() {
                Some("a link-local address (cloud metadata lives there)")
            } else if v4.is_multicast() || v4.is_broadcast() {
                Some("a multicast or broadcast address")
            } else if a == 100 && (64..128).contains(&b) {
                Some("a shared (carrier-grade NAT) address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return non_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("a loopback address")
            } else if v6.is_unspecified() {
                Some("an unspecified address")
            } else if first & 0xfe00 == 0xfc00 {
                Some("a private (unique local) address")
            } else if first & 0xffc0 == 0xfe80 {
                Some("a link-local address")
            } else if v6.is_multicast() {
                Some("a multicast address")
            } else {
                None
            }
        }
    }
}

/// The `[http]` allow and deny lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// Hosts let through even when they resolve to non-public addresses.
    pub allow: Vec<HostRule>,
    /// Hosts never reached.
    pub deny: Vec<HostRule>,
}

impl Rules {
    /// Checks a URL before it is requested (and every redirect hop): denied hosts, and IP
    /// literals (which are not looked up, so the resolver never sees them). A name listed in
    /// `allow` only with other ports is refused on this one, since the resolver cannot tell
    /// ports apart. Returns the refusal's reason.
    pub fn check_url(&self, url: &Url) -> Result<(), String> {
        let Some(host) = url.host() else {
            return Err("the URL has no host".into());
        };
        let port = url.port_or_known_default().unwrap_or(0);
        if let Some(rule) = self.deny.iter().find(|r| r.matches_host(&host, port)) {
            return Err(format!(
                "{host} is denied by [http] deny rule `{}`",
                rule.text
            ));
        }
        let allowed = self.allow.iter().any(|r| r.matches_host(&host, port));
        match host {
            Host::Domain(name) => {
                let other_port = self
                    .allow
                    .iter()
                    .find(|r| r.port.is_some() && r.name_matches(name));
                match other_port {
                    Some(rule) if !allowed => Err(format!(
                        "{name} is allowed by [http] allow rule `{}` on that port only, not {port}",
                        rule.text
                    )),
                    _ => Ok(()),
                }
            }
            Host::Ipv4(ip) => self.check_literal(IpAddr::V4(ip), allowed),
            Host::Ipv6(ip) => self.check_literal(IpAddr::V6(ip), allowed),
        }
    }

    fn check_literal(&self, ip: IpAddr, allowed: bool) -> Result<(), String> {
        match non_public(ip) {
            Some(class) if !allowed => Err(format!(
                "{ip} is {class}; list it in [http] allow to reach it"
            )),
            _ => Ok(()),
        }
    }

    /// Checks one address `name` resolved to: IP deny rules, and non-public addresses unless
    /// the name (or the address, by a rule without a port) is allowed.
    pub fn check_resolved(&self, name: &str, ip: IpAddr) -> Result<(), String> {
        let ip_rule = |r: &&HostRule| r.port.is_none() && r.pattern == Pattern::Ip(ip);
        if let Some(rule) = self.deny.iter().find(ip_rule) {
            return Err(format!(
                "{name} resolves to {ip}, denied by [http] deny rule `{}`",
                rule.text
            ));
        }
        let Some(class) = non_public(ip) else {
            return Ok(());
        };
        let allowed = self
            .allow
            .iter()
            .any(|r| r.name_matches(name) || ip_rule(&r));
        if allowed {
            Ok(())
        } else {
            Err(format!(
                "{name} resolves to {ip}, {class}; list the host in [http] allow to reach it"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(allow: &[&str], deny: &[&str]) -> Rules {
        Rules {
            allow: allow.iter().map(|r| r.parse().unwrap()).collect(),
            deny: deny.iter().map(|r| r.parse().unwrap()).collect(),
        }
    }

    fn check(r: &Rules, url: &str) -> Result<(), String> {
        r.check_url(&Url::parse(url).unwrap())
    }

    #[test]
    fn rules_parse_hosts_ports_wildcards_and_ips() {
        for ok in [
            "example.com",
            "Example.com:8080",
            "*.internal.example.com",
            "10.0.0.1",
            "::1",
            "[::1]:9000",
            "127.0.0.1:9000",
        ] {
            assert!(ok.parse::<HostRule>().is_ok(), "{ok}");
        }
        for bad in ["", "*.", "a*b.com", "host:port", "[::1", "http://x/"] {
            assert!(bad.parse::<HostRule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn non_public_addresses_are_refused_unless_allowed() {
        let none = rules(&[], &[]);
        for url in [
            "http://127.0.0.1/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://224.0.0.1/",
            "http://0x7f.1/",
        ] {
            assert!(check(&none, url).is_err(), "{url}");
        }
        assert!(check(&none, "http://93.184.216.34/").is_ok());
        assert!(check(&none, "https://example.com/").is_ok());

        let allow = rules(
            &["127.0.0.1:9000", "*.internal.example.com", "localhost:8080"],
            &[],
        );
        assert!(check(&allow, "http://127.0.0.1:9000/x").is_ok());
        assert!(check(&allow, "http://127.0.0.1:9001/x").is_err());
        assert!(check(&allow, "http://localhost:8080/").is_ok());
        let other_port = check(&allow, "http://localhost:22/").unwrap_err();
        assert!(
            other_port.contains("`localhost:8080` on that port only"),
            "{other_port}"
        );
        let ip = "10.0.0.7".parse().unwrap();
        assert!(allow.check_resolved("db.internal.example.com", ip).is_ok());
        assert!(allow.check_resolved("internal.example.com", ip).is_err());
        assert!(allow
            .check_resolved("localhost", "127.0.0.1".parse().unwrap())
            .is_ok());
        // An IP rule with a port does not cover names resolving to it (the port is unknown).
        assert!(allow
            .check_resolved("other.test", "127.0.0.1".parse().unwrap())
            .is_err());
        assert!(allow
            .check_resolved("example.com", "93.184.216.34".parse().unwrap())
            .is_ok());
    }

    #[test]
    fn deny_rules_win_and_are_named() {
        let r = rules(
            &["*.example.com"],
            &["evil.example.com", "203.0.113.9", "*.bad.test"],
        );
        let e = check(&r, "https://evil.example.com/").unwrap_err();
        assert!(e.contains("deny rule `evil.example.com`"), "{e}");
        assert!(check(&r, "https://x.bad.test/").is_err());
        assert!(check(&r, "https://bad.test/").is_ok());
        assert!(check(&r, "http://203.0.113.9/").is_err());
        let e = r
            .check_resolved("ok.test", "203.0.113.9".parse().unwrap())
            .unwrap_err();
        assert!(e.contains("deny rule `203.0.113.9`"), "{e}");
    }
}
