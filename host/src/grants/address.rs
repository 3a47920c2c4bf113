//! Addresses a grant must name outright: a host name that resolves to one
//! of them could reach the host's own services or its cloud's metadata.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What kind of restricted address `ip` is, or `None` for a public one.
pub fn restricted(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => restricted_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => restricted_v4(v4),
            None => restricted_v6(v6),
        },
    }
}

fn restricted_v4(v4: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = v4.octets();
    if v4.is_loopback() {
        Some("a loopback address")
    } else if v4.is_private() {
        Some("a private address")
    } else if v4.is_link_local() {
        // 169.254.169.254 is where most clouds serve instance metadata.
        Some("a link-local (cloud metadata) address")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a shared (carrier-grade NAT) address")
    } else if a == 0 || v4.is_broadcast() || v4.is_multicast() {
        Some("a non-unicast address")
    } else {
        None
    }
}

fn restricted_v6(v6: Ipv6Addr) -> Option<&'static str> {
    let first = v6.segments()[0];
    if v6.is_loopback() {
        Some("a loopback address")
    } else if v6.is_unspecified() || v6.is_multicast() {
        Some("a non-unicast address")
    } else if first & 0xfe00 == 0xfc00 {
        Some("a unique local (private) address")
    } else if first & 0xffc0 == 0xfe80 {
        Some("a link-local address")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_local_addresses_are_restricted() {
        for text in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(restricted(text.parse().unwrap()).is_some(), "{text}");
        }
        for text in ["93.184.215.14", "2606:4700::1111", "172.32.0.1"] {
            assert_eq!(restricted(text.parse().unwrap()), None, "{text}");
        }
    }
}
