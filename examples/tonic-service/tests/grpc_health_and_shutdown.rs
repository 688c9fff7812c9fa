//! The example as a user runs it: a real process, a real tonic client, a signal.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lookout_health::grpc::pb::health_check_response::ServingStatus;
use lookout_health::grpc::pb::health_client::HealthClient;
use lookout_health::grpc::pb::{HealthCheckRequest, HealthListRequest};
use lookout_testing::free_port;
use tonic::transport::Channel;

struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn req(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.to_owned(),
    }
}

async fn connect(addr: &str) -> HealthClient<Channel> {
    let start = Instant::now();
    loop {
        if let Ok(ch) = Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
        {
            return HealthClient::new(ch);
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn grpc_health_serves_and_turns_not_serving_on_sigterm() {
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let upstream_addr = upstream.local_addr().expect("addr").to_string();
    let listen = format!("127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_example-tonic-service"))
        .env("LISTEN_ADDR", &listen)
        .env("LOOKOUT_ADMIN_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("UPSTREAM_ADDR", &upstream_addr)
        .env("SHUTDOWN_DRAIN", "1s")
        .env("OTEL_SDK_DISABLED", "true")
        .env("LOOKOUT_CONSOLE", "off")
        .stdout(Stdio::null())
        .spawn()
        .expect("start example-tonic-service");
    let mut svc = Service(child);
    let mut client = connect(&listen).await;

    let status = |r: Result<
        tonic::Response<lookout_health::grpc::pb::HealthCheckResponse>,
        tonic::Status,
    >| { r.expect("check").into_inner().status() };
    assert_eq!(status(client.check(req("")).await), ServingStatus::Serving);
    assert_eq!(
        status(client.check(req("upstream")).await),
        ServingStatus::Serving
    );
    let list = client
        .list(HealthListRequest {})
        .await
        .expect("list")
        .into_inner();
    assert!(list.statuses.contains_key("memory") && list.statuses.contains_key("readiness"));

    // The upstream goes away; its check (2 failures before down, 1 s TTL) turns readiness off.
    drop(upstream);
    let mut watch = client
        .watch(req("readiness"))
        .await
        .expect("watch")
        .into_inner();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(15), watch.next())
            .await
            .expect("an update")
            .expect("stream open")
            .expect("message")
            .status()
    };
    assert_eq!(next().await, ServingStatus::Serving);
    assert_eq!(next().await, ServingStatus::NotServing, "upstream down");

    // The CLI subcommand reports the same.
    let out = Command::new(env!("CARGO_BIN_EXE_example-tonic-service"))
        .args(["check", "upstream"])
        .env("LISTEN_ADDR", &listen)
        .env("OTEL_SDK_DISABLED", "true")
        .env("LOOKOUT_CONSOLE", "off")
        .output()
        .expect("run check");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "\"upstream\": NOT_SERVING"
    );

    let mut live = client
        .watch(req("liveness"))
        .await
        .expect("watch")
        .into_inner();
    let first = live.next().await.expect("open").expect("message");
    assert_eq!(first.status(), ServingStatus::Serving);
    let pid = svc.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    // While draining, the whole server is NOT_SERVING and liveness is still SERVING.
    let start = Instant::now();
    loop {
        if status(client.check(req("")).await) == ServingStatus::NotServing {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "shutdown not reported"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        status(client.check(req("liveness")).await),
        ServingStatus::Serving
    );
    let start = Instant::now();
    let exit = loop {
        if let Some(s) = svc.0.try_wait().expect("try_wait") {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}");
}
