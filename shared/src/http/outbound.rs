//! Outbound webhook requests: where they may go — the special-purpose address ranges no delivery may
//! reach (SSRF), a URL check for subscriptions, and a DNS resolver that applies the same rule to the
//! addresses actually connected to on every attempt, so a name that re-resolves (DNS rebinding) cannot
//! reach them either — and how they are signed (Standard Webhooks: `whsec_` secrets, `v1` signatures).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use crate::domain::values::FieldError;

/// True for an address a webhook must not reach: every range of the IANA IPv4 and IPv6 special-purpose
/// address registries that is not globally reachable (loopback, private, shared, link-local, benchmarking,
/// documentation, reserved, multicast), and the IPv6 forms that embed an IPv4 address (mapped, compatible,
/// NAT64, 6to4, Teredo) — refused whole, since what they reach depends on a translator we cannot see.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    a == 0                                         // 0.0.0.0/8 "this network"
        || a == 10                                 // 10.0.0.0/8 private
        || (a == 100 && (64..128).contains(&b))    // 100.64.0.0/10 shared (carrier-grade NAT)
        || a == 127                                // 127.0.0.0/8 loopback
        || (a == 169 && b == 254)                  // 169.254.0.0/16 link-local (cloud metadata)
        || (a == 172 && (16..32).contains(&b))     // 172.16.0.0/12 private
        || (a == 192 && b == 0 && c == 0)          // 192.0.0.0/24 IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)          // 192.0.2.0/24 documentation
        || (a == 192 && b == 31 && c == 196)       // 192.31.196.0/24 AS112
        || (a == 192 && b == 52 && c == 193)       // 192.52.193.0/24 AMT
        || (a == 192 && b == 88 && c == 99)        // 192.88.99.0/24 6to4 relay anycast
        || (a == 192 && b == 168)                  // 192.168.0.0/16 private
        || (a == 192 && b == 175 && c == 48)       // 192.175.48.0/24 AS112 direct delegation
        || (a == 198 && (b == 18 || b == 19))      // 198.18.0.0/15 benchmarking
        || (a == 198 && b == 51 && c == 100)       // 198.51.100.0/24 documentation
        || (a == 203 && b == 0 && c == 113)        // 203.0.113.0/24 documentation
        || a >= 224 // 224.0.0.0/4 multicast, 240.0.0.0/4 reserved, 255.255.255.255 broadcast
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4); // ::ffff:0:0/96 reaches the IPv4 address itself
    }
    s[..6] == [0; 6]                                            // ::/96: unspecified, loopback, IPv4-compatible
        || (s[0] == 0x64 && s[1] == 0xff9b && (s[2..6] == [0; 4] || s[2] == 1)) // 64:ff9b::/96, 64:ff9b:1::/48 NAT64
        || (s[0] == 0x100 && s[1..4] == [0; 3])                 // 100::/64 discard-only
        || (s[0] == 0x2001 && s[1] < 0x200)                     // 2001::/23 IETF assignments (Teredo, benchmarking…)
        || (s[0] == 0x2001 && s[1] == 0xdb8)                    // 2001:db8::/32 documentation
        || s[0] == 0x2002                                       // 2002::/16 6to4
        || (s[0] & 0xfff0) == 0x3ff0                            // 3fff::/20 documentation
        || s[0] == 0x5f00                                       // 5f00::/16 segment routing
        || (s[0] & 0xfe00) == 0xfc00                            // fc00::/7 unique local
        || (s[0] & 0xffc0) == 0xfe80                            // fe80::/10 link-local
        || (s[0] & 0xffc0) == 0xfec0                            // fec0::/10 site-local (deprecated)
        || (s[0] & 0xff00) == 0xff00 // ff00::/8 multicast
}

/// The variable that lets webhooks reach loopback and private addresses (tests, a receiver on the same host).
pub const ALLOW_PRIVATE_VAR: &str = "PRESSROOM_WEBHOOK_ALLOW_PRIVATE";

/// Checks a webhook URL: absolute http(s) with a host, and — unless `allow_private` — every address it
/// resolves to now is reachable. (Deliveries check again at connect time: see [`GuardedResolver`].)
/// Returns the normalised URL.
pub async fn check_webhook_url(raw: &str, allow_private: bool) -> Result<url::Url, FieldError> {
    let bad = |m: String| FieldError::new("url", m);
    let url = url::Url::parse(raw.trim()).map_err(|_| bad("must be an absolute http or https URL".into()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must be an absolute http or https URL".into()));
    }
    let host = url.host().ok_or_else(|| bad("has no host".into()))?;
    if allow_private {
        return Ok(url);
    }
    let refused = || {
        bad(format!(
            "resolves to a loopback, private or reserved address; set {ALLOW_PRIVATE_VAR}=1 to allow such receivers"
        ))
    };
    let addrs: Vec<IpAddr> = match host {
        url::Host::Ipv4(ip) => vec![IpAddr::V4(ip)],
        url::Host::Ipv6(ip) => vec![IpAddr::V6(ip)],
        url::Host::Domain(name) => tokio::net::lookup_host((name, 0))
            .await
            .map_err(|_| bad("host does not resolve".into()))?
            .map(|a| a.ip())
            .collect(),
    };
    if addrs.is_empty() || addrs.iter().any(|ip| is_forbidden(*ip)) {
        return Err(refused());
    }
    Ok(url)
}

/// Refusal of a delivery target at send time.
#[derive(Debug, thiserror::Error)]
#[error("{0} resolves only to loopback, private or reserved addresses")]
pub struct ForbiddenTarget(pub String);

/// A reqwest DNS resolver that drops forbidden addresses from every lookup (and fails when none is
/// left), so the address connected to is the address checked.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let allowed: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.filter(|a| !is_forbidden(a.ip())).collect();
            if allowed.is_empty() {
                return Err(Box::new(ForbiddenTarget(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The HTTP client for deliveries: no redirects, no proxies from the environment, a timeout, and —
/// unless `allow_private` — the guarded resolver. URLs whose host is an address literal bypass any
/// resolver: check those with [`literal_target_allowed`] before sending.
pub fn delivery_client(timeout: std::time::Duration, allow_private: bool) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder().timeout(timeout).redirect(reqwest::redirect::Policy::none()).no_proxy();
    let builder = if allow_private { builder } else { builder.dns_resolver(Arc::new(GuardedResolver)) };
    builder.build()
}

/// False when `url`'s host is an IP literal that deliveries may not reach (names go through the resolver).
pub fn literal_target_allowed(url: &str, allow_private: bool) -> bool {
    if allow_private {
        return true;
    }
    match url::Url::parse(url).ok().and_then(|u| u.host().map(|h| h.to_owned())) {
        Some(url::Host::Ipv4(ip)) => !forbidden_v4(ip),
        Some(url::Host::Ipv6(ip)) => !forbidden_v6(ip),
        Some(url::Host::Domain(_)) => true,
        None => false,
    }
}

/// The prefix of a Standard Webhooks secret; the rest is the base64 of the HMAC key.
pub const SECRET_PREFIX: &str = "whsec_";
/// The shortest HMAC key a subscription may have, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// A subscription's secret in its `whsec_<base64 key>` form: generated (32 random bytes) when `raw` is
/// absent, taken as it is when it is already a `whsec_` secret, else the UTF-8 bytes of `raw` are the key.
/// Keys shorter than 16 bytes are refused.
pub fn webhook_secret(raw: Option<&str>) -> Result<String, FieldError> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = match raw {
        None => rand::random::<[u8; 32]>().to_vec(),
        Some(raw) => match raw.strip_prefix(SECRET_PREFIX) {
            Some(encoded) => b64
                .decode(encoded)
                .map_err(|_| FieldError::new("secret", "a whsec_ secret must be followed by base64"))?,
            None => raw.as_bytes().to_vec(),
        },
    };
    if key.len() < MIN_SECRET_BYTES {
        return Err(FieldError::new(
            "secret",
            format!("must be at least {MIN_SECRET_BYTES} bytes (or omitted: one is generated)"),
        ));
    }
    Ok(format!("{SECRET_PREFIX}{}", b64.encode(key)))
}

/// The `webhook-signature` value for one delivery attempt: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`
/// under the key of a `whsec_` secret (as stored). None if the stored secret is not one.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    use base64::Engine as _;
    use hmac::Mac as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()?;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).ok()?;
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!("v1,{}", b64.encode(mac.finalize().into_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn special_purpose_ranges_and_ipv4_embedding_forms_are_forbidden() {
        for s in [
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::808:808",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:db8::1",
            "2002:7f00:1::1",
            "3fff::1",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
        ] {
            assert!(is_forbidden(ip(s)), "{s} must be forbidden");
        }
        for s in ["93.184.216.34", "8.8.8.8", "198.20.0.1", "2606:4700::1111", "::ffff:93.184.216.34", "2a00:1450::1"] {
            assert!(!is_forbidden(ip(s)), "{s} is public");
        }
    }

    #[tokio::test]
    async fn subscription_urls_to_local_or_literal_private_hosts_are_refused_unless_allowed() {
        for url in ["http://localhost:9000/hook", "http://[::127.0.0.1]/", "http://198.18.0.1/", "http://[2002::1]/"] {
            let err = check_webhook_url(url, false).await.err();
            assert!(err.is_some_and(|e| e.message.contains(ALLOW_PRIVATE_VAR)), "{url}");
        }
        assert!(check_webhook_url("http://127.0.0.1:9000/hook", true).await.is_ok());
        assert!(check_webhook_url("ftp://example.com/", true).await.is_err());
        assert!(!literal_target_allowed("http://[::ffff:127.0.0.1]:80/", false));
        assert!(literal_target_allowed("http://127.0.0.1/", true));
        assert!(literal_target_allowed("http://receiver.example/", false));
    }

    #[test]
    fn secrets_become_whsec_keys_and_signatures_follow_the_standard_webhooks_example() {
        // The example in the Standard Webhooks specification's reference tests.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let sig = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig.as_deref(), Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="));
        assert_eq!(webhook_secret(Some(secret)).as_deref(), Ok(secret));
        assert_eq!(webhook_secret(Some("a-long-webhook-secret")).as_deref(), Ok("whsec_YS1sb25nLXdlYmhvb2stc2VjcmV0"));
        assert!(webhook_secret(Some("short")).is_err());
        assert!(webhook_secret(Some("whsec_!!")).is_err());
        let generated = webhook_secret(None).unwrap_or_default();
        assert!(
            generated.starts_with(SECRET_PREFIX)
                && generated.len() > 40
                && webhook_secret(None).ok() != Some(generated)
        );
    }

    #[tokio::test]
    async fn the_guarded_resolver_never_yields_a_loopback_address() {
        use reqwest::dns::Resolve;
        let name: reqwest::dns::Name = "localhost".parse().unwrap_or_else(|_| unreachable!());
        assert!(GuardedResolver.resolve(name).await.is_err());
    }
}
