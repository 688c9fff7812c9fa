//! The gRPC health v1 service, served by tonic on loopback and called with a real tonic client.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use lookout_health::grpc::pb::health_check_response::ServingStatus;
use lookout_health::grpc::pb::health_client::HealthClient;
use lookout_health::grpc::pb::{HealthCheckRequest, HealthCheckResponse, HealthListRequest};
use lookout_health::{Check, Health, Status, check_fn};
use tonic::transport::{Channel, Server, server::TcpIncoming};

async fn serve(health: &Health) -> HealthClient<Channel> {
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse().expect("addr")).expect("bind loopback");
    let addr = incoming.local_addr().expect("addr");
    let service = health.grpc_service();
    tokio::spawn(
        Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming),
    );
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    HealthClient::new(channel)
}

fn req(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.to_owned(),
    }
}

/// A check whose status the test switches.
fn switch(name: &str, up: &Arc<AtomicBool>) -> Check {
    let up = up.clone();
    Check::new(
        name,
        check_fn(move || {
            let s = if up.load(Ordering::SeqCst) {
                Status::Up
            } else {
                Status::Down
            };
            async move { s }
        }),
    )
    .ttl(Duration::ZERO)
}

fn sample(db_up: &Arc<AtomicBool>) -> Health {
    Health::builder()
        .group("payments")
        .check(
            Check::new("core", check_fn(|| async { Status::Up })).groups(["liveness", "readiness"]),
        )
        .check(switch("db", db_up).external())
        .check(
            Check::new("psp", check_fn(|| async { Status::Down }))
                .external()
                .groups(["payments"]),
        )
        .check(
            Check::new("warming", check_fn(|| async { Status::Up }))
                .groups(["startup"])
                .background(Duration::from_secs(3600))
                .initial_delay(Duration::from_secs(3600)),
        )
        .build()
        .expect("valid")
}

async fn status(
    client: &mut HealthClient<Channel>,
    service: &str,
) -> Result<ServingStatus, tonic::Code> {
    client
        .check(req(service))
        .await
        .map(|r| r.into_inner().status())
        .map_err(|s| s.code())
}

#[tokio::test]
async fn check_answers_for_the_server_groups_and_checks() {
    let db_up = Arc::new(AtomicBool::new(true));
    let health = sample(&db_up);
    let mut client = serve(&health).await;
    assert_eq!(
        status(&mut client, "").await,
        Ok(ServingStatus::NotServing),
        "payments is down"
    );
    assert_eq!(
        status(&mut client, "readiness").await,
        Ok(ServingStatus::Serving)
    );
    assert_eq!(
        status(&mut client, "payments").await,
        Ok(ServingStatus::NotServing)
    );
    assert_eq!(status(&mut client, "db").await, Ok(ServingStatus::Serving));
    assert_eq!(
        status(&mut client, "startup").await,
        Ok(ServingStatus::Unknown),
        "no result yet"
    );
    assert_eq!(
        status(&mut client, "no.such.Service").await,
        Err(tonic::Code::NotFound)
    );
    let err = client.check(req("nope")).await.expect_err("not found");
    assert!(
        err.message().contains("unknown service 'nope'"),
        "{}",
        err.message()
    );
    db_up.store(false, Ordering::SeqCst);
    assert_eq!(
        status(&mut client, "readiness").await,
        Ok(ServingStatus::NotServing)
    );
}

#[tokio::test]
async fn list_returns_every_service() {
    let db_up = Arc::new(AtomicBool::new(true));
    let health = sample(&db_up);
    let mut client = serve(&health).await;
    let list = client
        .list(HealthListRequest {})
        .await
        .expect("list")
        .into_inner();
    let mut got: Vec<(String, ServingStatus)> = list
        .statuses
        .into_iter()
        .map(|(k, v)| (k, v.status()))
        .collect();
    got.sort();
    use ServingStatus::*;
    let mut want: Vec<(String, ServingStatus)> = [
        ("", NotServing),
        ("liveness", Serving),
        ("readiness", Serving),
        ("startup", Unknown),
        ("payments", NotServing),
        ("core", Serving),
        ("db", Serving),
        ("psp", NotServing),
        ("warming", Unknown),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test]
async fn list_refuses_more_than_a_hundred_services() {
    let mut builder = Health::builder();
    for i in 0..100 {
        builder = builder.check(Check::new(
            format!("c{i}"),
            check_fn(|| async { Status::Up }),
        ));
    }
    let mut client = serve(&builder.build().expect("valid")).await;
    let err = client
        .list(HealthListRequest {})
        .await
        .expect_err("too many");
    assert_eq!(err.code(), tonic::Code::ResourceExhausted);
}

async fn next(s: &mut tonic::Streaming<HealthCheckResponse>) -> ServingStatus {
    tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .expect("an update within 10 s")
        .expect("stream open")
        .map(|r| r.status())
        .expect("message")
}

#[tokio::test]
async fn watch_streams_changes() {
    let db_up = Arc::new(AtomicBool::new(true));
    let health = sample(&db_up);
    let mut client = serve(&health).await;
    let mut stream = client.watch(req("db")).await.expect("watch").into_inner();
    assert_eq!(next(&mut stream).await, ServingStatus::Serving);
    db_up.store(false, Ordering::SeqCst);
    assert_eq!(next(&mut stream).await, ServingStatus::NotServing);
    db_up.store(true, Ordering::SeqCst);
    assert_eq!(next(&mut stream).await, ServingStatus::Serving);
    health.begin_shutdown();
    assert_eq!(
        next(&mut stream).await,
        ServingStatus::NotServing,
        "shutdown"
    );
}

#[tokio::test]
async fn watch_on_an_unknown_service_says_so_and_stays_open() {
    let db_up = Arc::new(AtomicBool::new(true));
    let health = sample(&db_up);
    let mut client = serve(&health).await;
    let mut stream = client
        .watch(req("cache"))
        .await
        .expect("watch")
        .into_inner();
    let first = stream.next().await.expect("open").expect("message");
    assert_eq!(first.status(), ServingStatus::ServiceUnknown);
    // Still open: nothing more arrives, and the stream has not ended.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), stream.next())
            .await
            .is_err(),
        "the stream stays open with no new message"
    );
    health
        .register(Check::new("cache", check_fn(|| async { Status::Up })))
        .expect("register");
    let later = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("update")
        .expect("open")
        .expect("message");
    assert_eq!(
        later.status(),
        ServingStatus::Serving,
        "the service appeared"
    );
}

#[tokio::test]
async fn shutdown_sets_not_serving_but_liveness_stays_serving() {
    let db_up = Arc::new(AtomicBool::new(true));
    let health = sample(&db_up);
    let mut client = serve(&health).await;
    assert_eq!(
        status(&mut client, "readiness").await,
        Ok(ServingStatus::Serving)
    );
    health.begin_shutdown();
    assert_eq!(status(&mut client, "").await, Ok(ServingStatus::NotServing));
    assert_eq!(
        status(&mut client, "readiness").await,
        Ok(ServingStatus::NotServing)
    );
    assert_eq!(
        status(&mut client, "db").await,
        Ok(ServingStatus::NotServing)
    );
    assert_eq!(
        status(&mut client, "liveness").await,
        Ok(ServingStatus::Serving)
    );
}

#[tokio::test]
async fn watch_streams_end_when_the_drain_is_over() {
    let db_up = Arc::new(AtomicBool::new(true));
    let health = Health::builder()
        .check(Check::new("core", check_fn(|| async { Status::Up })).groups(["liveness"]))
        .check(switch("db", &db_up))
        .drain_delay(Duration::from_millis(100))
        .build()
        .expect("valid");
    let mut client = serve(&health).await;
    let mut ready = client
        .watch(req("readiness"))
        .await
        .expect("watch")
        .into_inner();
    let mut live = client
        .watch(req("liveness"))
        .await
        .expect("watch")
        .into_inner();
    assert_eq!(next(&mut ready).await, ServingStatus::Serving);
    assert_eq!(next(&mut live).await, ServingStatus::Serving);
    health.shutdown().await;
    assert_eq!(next(&mut ready).await, ServingStatus::NotServing);
    for stream in [&mut ready, &mut live] {
        let end = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("the stream ends");
        assert!(end.is_none(), "{end:?}");
    }
}
