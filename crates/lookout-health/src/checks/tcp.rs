use std::time::Instant;

use crate::{Check, CheckResult, HealthCheck};

/// Opens a TCP connection to a dependency (`host:port`) and closes it: Up when it connects, Down
/// with the error otherwise. The observed value is the connect time in seconds. The registry's
/// timeout bounds the attempt.
#[derive(Debug, Clone)]
pub struct Tcp {
    address: String,
}

impl Tcp {
    /// A check of `address` (`host:port`, resolved at each run).
    pub fn new(address: impl Into<String>) -> Tcp {
        Tcp {
            address: address.into(),
        }
    }

    /// A registered check named `name`, marked external (so it cannot go in liveness).
    pub fn check(name: impl Into<String>, address: impl Into<String>) -> Check {
        Check::new(name, Tcp::new(address)).external()
    }
}

impl HealthCheck for Tcp {
    async fn check(&self) -> CheckResult {
        let started = Instant::now();
        match tokio::net::TcpStream::connect(&self.address).await {
            Ok(_) => CheckResult::up().with_observed(started.elapsed().as_secs_f64(), "s"),
            Err(e) => CheckResult::down(format!("cannot connect to {}: {e}", self.address))
                .with_error_type(format!("{:?}", e.kind()).to_lowercase()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;

    #[tokio::test]
    async fn connects_to_a_listener_and_reports_a_refusal() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        assert_eq!(Tcp::new(addr.clone()).check().await.status(), Status::Up);
        drop(listener);
        let r = Tcp::new(addr.clone()).check().await;
        assert_eq!(r.status(), Status::Down);
        assert!(r.message().is_some_and(|m| m.contains(&addr)), "{r:?}");
        assert_eq!(r.error_type(), Some("connectionrefused"));
    }
}
