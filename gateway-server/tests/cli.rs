//! The `gateway` binary's operator commands print only what scripts capture.

use std::process::Command;

fn gateway(db: &str, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(args)
        .env("GATEWAY_DATABASE_URL", db)
        .env("GATEWAY_LOG_LEVEL", "warn")
        .env_remove("GATEWAY_CONFIG")
        .output()
        .expect("gateway runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn migrate_merchant_create_and_apikey_create() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("cli.db").display());
    let (ok, stdout, _) = gateway(&db, &["migrate"]);
    assert!(ok && stdout.is_empty());
    let (ok, stdout, stderr) = gateway(&db, &["merchant", "create", "--name", "Acme"]);
    assert!(ok, "{stderr}");
    let merchant = stdout.trim();
    assert_eq!(stdout.lines().count(), 1);
    assert_eq!(merchant.len(), 36, "a UUID: {merchant:?}");
    let (ok, stdout, stderr) = gateway(
        &db,
        &[
            "apikey",
            "create",
            "--merchant",
            merchant,
            "--scopes",
            "payments:read,payments:write",
        ],
    );
    assert!(ok, "{stderr}");
    assert_eq!(stdout.lines().count(), 1);
    assert!(stdout.trim().starts_with("gw_sk_"), "{stdout}");
    let (ok, _, stderr) = gateway(&db, &["apikey", "create", "--merchant", "nope"]);
    assert!(!ok && stderr.contains("no merchant"));
    let (ok, _, stderr) = gateway(
        &db,
        &["apikey", "create", "--merchant", merchant, "--scopes", "root"],
    );
    assert!(!ok && stderr.contains("unknown scope"));
    let (ok, _, stderr) = gateway("mysql://x", &["migrate"]);
    assert!(!ok && stderr.contains("database_url"), "{stderr}");
}

/// `gateway serve` as a child process, killed when dropped.
struct Serving {
    child: std::process::Child,
    base: String,
    /// What it printed to stdout, line by line.
    stdout: std::sync::mpsc::Receiver<String>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `gateway serve` on a free port with `env`; waits (at most 30 s) until it answers `/healthz`.
fn serve(db: &str, env: &[(&str, &str)]) -> Serving {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_gateway"));
    command
        .arg("serve")
        .env("GATEWAY_DATABASE_URL", db)
        .env("GATEWAY_LISTEN", format!("127.0.0.1:{port}"))
        .env("GATEWAY_LOG_LEVEL", "warn")
        .env("GATEWAY_WORKERS", "1")
        .env_remove("GATEWAY_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("gateway starts");
    let (lines, stdout) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let serving = Serving {
        child,
        base: format!("http://127.0.0.1:{port}"),
        stdout,
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "the server did not come up");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    serving
}

/// Sends `method path` with `header` (the API key, a signature) and a JSON
/// `body`; returns the status and the body.
async fn call(
    base: &str,
    method: &str,
    path: &str,
    header: (&str, &str),
    body: &str,
) -> (u16, serde_json::Value) {
    let client = awc::Client::default();
    let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut response = client
        .request(method, format!("{base}{path}"))
        .insert_header(header)
        .insert_header(("Content-Type", "application/json"))
        .send_body(body.to_owned())
        .await
        .expect("request sent");
    let bytes = response.body().await.expect("body read");
    (
        response.status().as_u16(),
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn serve_refuses_an_ambiguous_or_unknown_default_provider() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("ambiguous.db").display());
    let refused = |env: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_gateway"));
        command
            .arg("serve")
            .env("GATEWAY_DATABASE_URL", &db)
            .env("GATEWAY_LISTEN", "127.0.0.1:0")
            .env("GATEWAY_LOG_LEVEL", "warn")
            .env_remove("GATEWAY_CONFIG")
            .env_remove("GATEWAY_DEFAULT_PROVIDER")
            .env_remove("GATEWAY_SANDBOX")
            .env_remove("GATEWAY_MODE");
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("gateway runs");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("it started (or hung) with {env:?}");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        assert!(!status.success(), "it must not start with {env:?}");
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        stderr
    };
    // A sandbox (the mock) with a Stripe key and no default: which one would a payment reach?
    let stderr = refused(&[("STRIPE_SECRET_KEY", "sk_test_ambiguous")]);
    assert!(
        stderr.contains("GATEWAY_DEFAULT_PROVIDER=stripe") && stderr.contains("GATEWAY_MODE=production"),
        "{stderr}"
    );
    assert!(!stderr.contains("sk_test_ambiguous"), "{stderr}");
    // The mock named as the default of a production configuration.
    let stderr = refused(&[
        ("STRIPE_SECRET_KEY", "sk_test_x"),
        ("GATEWAY_MODE", "production"),
        ("GATEWAY_DEFAULT_PROVIDER", "mock"),
    ]);
    assert!(stderr.contains("sandbox mode only"), "{stderr}");
    // Mock settings in a production configuration.
    let stderr = refused(&[("GATEWAY_MODE", "production"), ("GATEWAY_MOCK_SEED", "7")]);
    assert!(
        stderr.contains("sandbox mode only") && stderr.contains("GATEWAY_MOCK_SEED"),
        "{stderr}"
    );
    // An unknown mode names the setting.
    let stderr = refused(&[("GATEWAY_MODE", "live")]);
    assert!(stderr.contains("invalid mode"), "{stderr}");
    // Nothing was stored by the refused starts: the next good start is still a fresh sandbox.
    let server = serve(&db, &[("GATEWAY_DEFAULT_PROVIDER", "mock")]);
    let first = server.stdout.recv_timeout(std::time::Duration::from_secs(30));
    assert!(
        first
            .as_deref()
            .is_ok_and(|line| line.contains("Sandbox merchant API key")),
        "{first:?}"
    );
}

#[actix_web::test]
async fn the_default_run_is_a_working_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("sandbox.db").display());
    let server = serve(&db, &[]);
    let key = server
        .stdout
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the sandbox key is printed");
    let key = key
        .rsplit(' ')
        .next()
        .filter(|key| key.starts_with("gw_sk_"))
        .unwrap_or_else(|| panic!("{key}"))
        .to_owned();
    let (status, body) = call(
        &server.base,
        "POST",
        "/v1/payments",
        ("X-API-Key", &key),
        r#"{"amount": "10.00", "currency": "USD", "payment_method": "pm_card_visa"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["provider"], "mock");
    assert_eq!(body["data"]["status"], "completed", "{body}");
    // Its webhooks are signed with a secret of this process, not the mock's public default.
    let (status, body) = call(
        &server.base,
        "POST",
        "/v1/webhooks/mock",
        ("Mock-Signature", "whsec_mock"),
        "{}",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "webhook_signature_invalid", "{body}");
}

#[actix_web::test]
async fn the_mock_webhook_secret_can_be_configured() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("secret.db").display());
    let server = serve(&db, &[("GATEWAY_MOCK_WEBHOOK_SECRET", "whsec_chosen_for_tests")]);
    let signed = ("Mock-Signature", "whsec_chosen_for_tests");
    // The signature passes; the empty event does not.
    let (status, body) = call(&server.base, "POST", "/v1/webhooks/mock", signed, "{}").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "webhook_payload_invalid", "{body}");
    let (_, body) = call(
        &server.base,
        "POST",
        "/v1/webhooks/mock",
        ("Mock-Signature", "whsec_mock"),
        "{}",
    )
    .await;
    assert_eq!(body["error"]["code"], "webhook_signature_invalid", "{body}");
}

#[actix_web::test]
async fn a_production_configuration_cannot_reach_the_mock() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("production.db").display());
    let (ok, merchant, stderr) = gateway(&db, &["merchant", "create"]);
    assert!(ok, "{stderr}");
    let (ok, key, stderr) = gateway(&db, &["apikey", "create", "--merchant", merchant.trim()]);
    assert!(ok, "{stderr}");
    let key = key.trim();
    let server = serve(
        &db,
        &[
            ("GATEWAY_MODE", "production"),
            ("GATEWAY_MASTER_KEY", &"0123456789abcdef".repeat(4)),
            ("STRIPE_SECRET_KEY", "sk_test_production"),
            // Nothing listens there: no call of this test may reach it.
            ("STRIPE_API_BASE", "http://127.0.0.1:9"),
            // A production egress policy refuses that base unless the operator allows it.
            ("GATEWAY_EGRESS_ALLOW_HTTP", "true"),
            ("GATEWAY_EGRESS_ALLOW_NETS", "127.0.0.0/8"),
        ],
    );
    let (status, body) = call(
        &server.base,
        "POST",
        "/v1/webhooks/mock",
        ("X-API-Key", key),
        "{}",
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = call(
        &server.base,
        "POST",
        "/v1/payments",
        ("X-API-Key", key),
        r#"{"amount": "10.00", "currency": "USD", "payment_method": "pm_card_visa", "provider": "mock"}"#,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "provider", "{body}");
    // Nor through a merchant's own settings.
    let (status, body) = call(
        &server.base,
        "PUT",
        "/v1/merchant/providers",
        ("X-API-Key", key),
        r#"{"provider": "mock", "mock": {"seed": "1"}}"#,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("sandbox mode only"),
        "{body}"
    );
    let (status, body) = call(&server.base, "GET", "/v1/merchant", ("X-API-Key", key), "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["available_providers"], serde_json::json!(["stripe"]));
    // The first line on stdout would be a sandbox key: there is none.
    assert!(server.stdout.try_recv().is_err());
}
