//! The admin address (`LOOKOUT_ADMIN_ADDR`), shared by the health routes, `/metrics` and the
//! monitoring endpoints.

use std::net::{Ipv4Addr, SocketAddr};

/// The default admin address: loopback only, on the OpenTelemetry Prometheus exporter's port.
pub const DEFAULT_ADMIN_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 9464);

/// `LOOKOUT_ADMIN_ADDR` is not a socket address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "LOOKOUT_ADMIN_ADDR={value:?} is not a socket address: use host:port, e.g. 127.0.0.1:9464 (or 0.0.0.0:9464 to listen beyond loopback)"
)]
pub struct AdminAddrError {
    /// The value found.
    pub value: String,
}

/// The admin address: `LOOKOUT_ADMIN_ADDR` if set and not empty, else 127.0.0.1:9464. A value that
/// is not an address is an error rather than a silent default, since the admin routes would then
/// appear somewhere the operator did not choose.
pub fn admin_addr() -> Result<SocketAddr, AdminAddrError> {
    parse(std::env::var("LOOKOUT_ADMIN_ADDR").ok().as_deref())
}

fn parse(value: Option<&str>) -> Result<SocketAddr, AdminAddrError> {
    match value.map(str::trim) {
        None | Some("") => Ok(DEFAULT_ADMIN_ADDR),
        Some(v) => v.parse().map_err(|_| AdminAddrError {
            value: v.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_value_and_errors() {
        assert_eq!(parse(None), Ok(DEFAULT_ADMIN_ADDR));
        assert_eq!(parse(Some(" ")), Ok(DEFAULT_ADMIN_ADDR));
        assert_eq!(parse(Some("0.0.0.0:1")).map(|a| a.port()), Ok(1));
        let e = parse(Some("localhost")).expect_err("no port");
        assert!(
            e.to_string().contains("LOOKOUT_ADMIN_ADDR=\"localhost\""),
            "{e}"
        );
    }
}
