//! Slow clients (a head or a body sent a byte at a time, or never) are cut
//! off within the configured deadlines, and the server keeps answering
//! meanwhile. In the `sqlite` binary only: one backend is enough, and it
//! holds a few hundred sockets.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use awc::http::StatusCode;

use crate::common::TestServer;

/// Clients of each kind held open at once.
const CLIENTS: usize = 100;

/// Opens a connection and sends `start` (a request never finished).
fn slow_client(addr: SocketAddr, start: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream.write_all(start.as_bytes()).expect("writes");
    stream
}

/// What the server sent before it closed the connection (within `within`).
fn read_until_closed(mut stream: TcpStream, within: Duration) -> (String, bool) {
    stream.set_read_timeout(Some(within)).expect("timeout set");
    let mut text = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return (String::from_utf8_lossy(&text).into_owned(), true),
            Ok(read) => text.extend_from_slice(&buffer[..read]),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {
                return (String::from_utf8_lossy(&text).into_owned(), true)
            }
            Err(_) => return (String::from_utf8_lossy(&text).into_owned(), false),
        }
    }
}

#[actix_web::test]
async fn slow_heads_and_bodies_are_cut_off_and_health_still_answers() {
    let server = TestServer::start_with(|config| {
        config.request_head_timeout = Duration::from_secs(1);
        config.body_read_timeout = Duration::from_secs(1);
    })
    .await;
    let addr: SocketAddr = server.url("").trim_start_matches("http://").parse().unwrap();
    let key = server.key.clone();
    let opened = Instant::now();
    let clients = actix_web::rt::task::spawn_blocking(move || {
        let mut bodies = Vec::new();
        let mut heads = Vec::new();
        for n in 0..CLIENTS {
            // No key needed for the webhook route; with one, any POST.
            let start = if n % 2 == 0 {
                "POST /v1/webhooks/mock HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{".to_owned()
            } else {
                format!(
                    "POST /v1/payments HTTP/1.1\r\nHost: gateway\r\nX-API-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{{"
                )
            };
            bodies.push(slow_client(addr, &start));
            heads.push(slow_client(addr, "GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Slow: "));
        }
        (bodies, heads)
    })
    .await
    .unwrap();
    let (bodies, heads) = clients;
    // Every slow client is connected: the server still answers.
    let health = server.send("GET", "/healthz", None, &[], None).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.text);
    assert!(
        opened.elapsed() < Duration::from_secs(1),
        "the clients took too long to open: the test proves nothing"
    );
    let outcome = actix_web::rt::task::spawn_blocking(move || {
        let bodies: Vec<_> = bodies
            .into_iter()
            .map(|stream| read_until_closed(stream, Duration::from_secs(5)))
            .collect();
        let heads: Vec<_> = heads
            .into_iter()
            .map(|stream| read_until_closed(stream, Duration::from_secs(5)))
            .collect();
        (bodies, heads)
    })
    .await
    .unwrap();
    let elapsed = opened.elapsed();
    assert!(elapsed < Duration::from_secs(6), "cut off after {elapsed:?}");
    for (text, closed) in &outcome.0 {
        assert!(closed, "a slow body kept its connection: {text}");
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains("\"code\":\"request_timeout\""), "{text}");
    }
    for (text, closed) in &outcome.1 {
        assert!(closed, "a slow head kept its connection: {text}");
        assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    }
    // And the server serves on.
    assert_eq!(
        server.send("GET", "/healthz", None, &[], None).await.status,
        StatusCode::OK
    );
    server.stop().await;
}
