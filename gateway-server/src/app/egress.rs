//! Outbound connections under the address policy
//! ([`crate::support::egress`]): checking a URL before it is stored (its
//! host resolved, every address checked), resolving a host for a connection
//! (only allowed addresses are returned, so the address checked is the
//! address connected to), and the merchant-webhook HTTP client, whose
//! connector the server layer builds around [`resolve_permitted`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::support::egress::{parse_url, EgressPolicy, Host, Scheme, UrlError};

/// The longest a host name may take to resolve, for a check or a connection.
pub(crate) const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// The fixed text of an attempt whose destination the policy refuses: the
/// same whatever is (or is not) listening there, since nothing is connected to.
pub(crate) const DESTINATION_NOT_ALLOWED: &str = "destination not allowed";

/// Builds the merchant-webhook HTTP client of one worker thread (the client
/// is not `Send`): redirects off, the given request timeout, every
/// connection through [`resolve_permitted`].
pub(crate) type ClientFactory = Arc<dyn Fn(Duration) -> awc::Client + Send + Sync>;

/// The policy and the webhook client factory, shared through `Core`.
pub(crate) struct Egress {
    /// Where outbound connections may go.
    pub(crate) policy: Arc<EgressPolicy>,
    /// The merchant-webhook client.
    pub(crate) webhook_client: ClientFactory,
}

/// Why a URL or a destination is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// The URL itself (scheme, userinfo, host spelling, port).
    #[error("{0}")]
    Url(#[from] UrlError),
    /// `http://` while the policy wants https.
    #[error("must use https://")]
    Http,
    /// An address the policy refuses, or a name that does not resolve (in
    /// time) to allowed addresses only. One message for all of these, so
    /// the answer says nothing about the network behind the gateway.
    #[error("must resolve to public addresses only (not loopback, private, link-local or other special-use addresses)")]
    Destination,
}

/// Checks `url` before it is stored: its scheme, its spelling, and every
/// address its host resolves to (any refused address refuses the URL). A
/// name that does not resolve (in time) is accepted: nothing can be
/// connected to there now, and every delivery checks the addresses it
/// connects to ([`resolve_permitted`]).
pub(crate) async fn check_url(policy: &EgressPolicy, url: &str) -> Result<(), Refusal> {
    let target = parse_url(url)?;
    if target.scheme == Scheme::Http && !policy.allow_http {
        return Err(Refusal::Http);
    }
    let addresses = match resolve(&target.host, target.port).await {
        Ok(addresses) => addresses,
        Err(_) => return Ok(()),
    };
    if addresses.iter().any(|address| !policy.permits(address.ip())) {
        return Err(Refusal::Destination);
    }
    Ok(())
}

/// The addresses of `host` a connection may use: resolved (an IP literal
/// is itself), refused ones dropped; [`Refusal::Destination`] when none is left.
pub(crate) async fn resolve_permitted(
    policy: &EgressPolicy,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, Refusal> {
    let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inside) => Host::Ip(IpAddr::V6(inside.parse().map_err(|_| Refusal::Destination)?)),
        None => match host.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => crate::support::egress::parse_host_name(host)?,
        },
    };
    let permitted: Vec<SocketAddr> = resolve(&host, port)
        .await?
        .into_iter()
        .filter(|address| policy.permits(address.ip()))
        .collect();
    if permitted.is_empty() {
        Err(Refusal::Destination)
    } else {
        Ok(permitted)
    }
}

async fn resolve(host: &Host, port: u16) -> Result<Vec<SocketAddr>, Refusal> {
    match host {
        Host::Ip(ip) => Ok(vec![SocketAddr::new(*ip, port)]),
        Host::Name(name) => {
            match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name.as_str(), port))).await
            {
                Ok(Ok(addresses)) => Ok(addresses.collect()),
                Ok(Err(_)) | Err(_) => Err(Refusal::Destination),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::egress::local_networks;

    #[tokio::test]
    async fn urls_are_checked_against_the_policy() {
        let strict = EgressPolicy::strict();
        for url in [
            "https://127.0.0.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://10.0.0.1/x",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:7f00:1]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://localhost/",
            "https://localhost:8443/",
        ] {
            assert_eq!(check_url(&strict, url).await, Err(Refusal::Destination), "{url}");
        }
        assert_eq!(
            check_url(&strict, "http://93.184.215.14/").await,
            Err(Refusal::Http)
        );
        assert_eq!(check_url(&strict, "https://93.184.215.14/hooks").await, Ok(()));
        // Not resolvable now (.invalid never is): checked again at every delivery.
        assert_eq!(
            check_url(&strict, "https://hooks.gateway-test.invalid/").await,
            Ok(())
        );
        assert!(matches!(
            check_url(&strict, "http://2130706433/").await,
            Err(Refusal::Url(UrlError::Host))
        ));
        let sandbox = EgressPolicy {
            allow_http: true,
            allow_nets: local_networks(),
        };
        assert_eq!(check_url(&sandbox, "http://127.0.0.1:9/").await, Ok(()));
        assert_eq!(check_url(&sandbox, "http://localhost:9/").await, Ok(()));
        assert_eq!(
            check_url(&sandbox, "http://169.254.169.254/").await,
            Err(Refusal::Destination)
        );
    }

    #[tokio::test]
    async fn a_connection_gets_only_allowed_addresses() {
        let strict = EgressPolicy::strict();
        assert_eq!(
            resolve_permitted(&strict, "127.0.0.1", 80).await,
            Err(Refusal::Destination)
        );
        assert_eq!(
            resolve_permitted(&strict, "[::1]", 80).await,
            Err(Refusal::Destination)
        );
        assert_eq!(
            resolve_permitted(&strict, "localhost", 80).await,
            Err(Refusal::Destination)
        );
        let ok = resolve_permitted(&strict, "93.184.215.14", 443).await.unwrap();
        assert_eq!(ok, vec!["93.184.215.14:443".parse().unwrap()]);
        let sandbox = EgressPolicy {
            allow_http: true,
            allow_nets: local_networks(),
        };
        let local = resolve_permitted(&sandbox, "localhost", 80).await.unwrap();
        assert!(local.iter().all(|a| a.ip().is_loopback()), "{local:?}");
    }
}
