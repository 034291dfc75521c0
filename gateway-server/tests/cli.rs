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

/// `gateway config` with a configuration file `toml` and `env`; whether it succeeded, stdout, stderr.
fn show_config(toml: &str, env: &[(&str, &str)]) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, toml).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_gateway"));
    command
        .arg("--config")
        .arg(&file)
        .arg("config")
        .env_remove("GATEWAY_CONFIG")
        .env_remove("GATEWAY_LISTEN")
        .env_remove("GATEWAY_MODE")
        .env_remove("GATEWAY_MASTER_KEY")
        .env_remove("GATEWAY_DATABASE_URL")
        .env_remove("STRIPE_SECRET_KEY")
        .env_remove("STRIPE_WEBHOOK_SECRET")
        .env_remove("GATEWAY_DEFAULT_PROVIDER");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("gateway runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn config_prints_the_effective_settings_the_environment_overriding_the_file() {
    let file = "listen = \"127.0.0.1:7001\"\nworkers = 3\nmode = \"sandbox\"\nwebhook_max_attempts = 5\n\
                reconcile_after = \"2m\"\n";
    let (ok, stdout, stderr) = show_config(
        file,
        &[
            ("GATEWAY_LISTEN", "127.0.0.1:7002"),
            ("GATEWAY_RECONCILE_INTERVAL", "5s"),
        ],
    );
    assert!(ok, "{stderr}");
    for line in [
        "listen = \"127.0.0.1:7002\"",
        "workers = 3",
        "mode = \"sandbox\"",
        "webhook_max_attempts = 5",
        "reconcile_after = \"2m\"",
        "reconcile_interval = \"5s\"",
        // Decided by the mode: a sandbox may send webhooks over http.
        "egress_allow_http = true",
    ] {
        assert!(
            stdout.lines().any(|shown| shown == line),
            "{line} missing:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains("7001"),
        "the file's listen was overridden:\n{stdout}"
    );
}

#[test]
fn config_never_prints_a_secret_given_in_the_file_or_the_environment() {
    let file_master = "ab".repeat(32);
    let env_master = "cd".repeat(32);
    let file = format!(
        "master_key = \"{file_master}\"\ndatabase_url = \"postgres://gw:file_db_password@db/gateway\"\n\
         mode = \"sandbox\"\n[providers.stripe]\nsecret_key = \"sk_test_file_secret_123\"\n\
         webhook_secret = \"whsec_file_secret_456\"\n[providers.mock]\nwebhook_secret = \"whsec_mock_file_789\"\n"
    );
    let (ok, stdout, stderr) = show_config(
        &file,
        &[
            ("GATEWAY_MASTER_KEY", &env_master),
            ("GATEWAY_DATABASE_URL", "postgres://gw:env_db_password@db/gateway"),
            ("STRIPE_SECRET_KEY", "sk_live_env_secret_abc"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_env_one,whsec_env_two"),
            ("GATEWAY_MOCK_WEBHOOK_SECRET", "whsec_mock_env_def"),
            ("GATEWAY_DEFAULT_PROVIDER", "stripe"),
        ],
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.ends_with("# providers offered: mock, stripe; default: stripe\n"),
        "{stdout}"
    );
    for secret in [
        file_master.as_str(),
        env_master.as_str(),
        "file_db_password",
        "env_db_password",
        "sk_test_file_secret_123",
        "sk_live_env_secret_abc",
        "whsec_file_secret_456",
        "whsec_env_one",
        "whsec_env_two",
        "whsec_mock_file_789",
        "whsec_mock_env_def",
    ] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} shown:\n{stdout}{stderr}"
        );
    }
    // Masked, the environment's winning: its key is a live one.
    for line in [
        "master_key = \"****\"",
        "database_url = \"postgres://gw:****@db/gateway\"",
        "providers.stripe.secret_key = \"sk_live_****\"",
        "providers.stripe.webhook_secrets = \"whsec_****,whsec_****\"",
        "providers.mock.webhook_secret = \"whsec_****\"",
    ] {
        assert!(
            stdout.lines().any(|shown| shown == line),
            "{line} missing:\n{stdout}"
        );
    }
}

#[test]
fn config_refuses_a_bad_setting_naming_it() {
    for (file, env, named) in [
        (
            "",
            &[("GATEWAY_RECONCILE_CONCURRENCY", "0")][..],
            "reconcile_concurrency",
        ),
        ("webhook_max_delay = \"soon\"\n", &[][..], "webhook_max_delay"),
        (
            "",
            &[("GATEWAY_EGRESS_ALLOW_HTTP", "perhaps")][..],
            "egress_allow_http",
        ),
        ("no_such_setting = 1\n", &[][..], "no_such_setting"),
    ] {
        let (ok, stdout, stderr) = show_config(file, env);
        assert!(!ok, "accepted {file:?} {env:?}:\n{stdout}");
        assert!(stdout.is_empty(), "{stdout}");
        assert!(stderr.contains(named), "{named} not named: {stderr}");
    }
    // Settings a provider refuses, or providers the server cannot choose between, fail as `serve` would.
    for (env, named) in [
        (
            &[("STRIPE_SECRET_KEY", "sk_test_x"), ("STRIPE_TIMEOUT_MS", "soon")][..],
            "timeout_ms",
        ),
        (
            &[("STRIPE_SECRET_KEY", "sk_test_x")][..],
            "GATEWAY_DEFAULT_PROVIDER",
        ),
    ] {
        let (ok, _, stderr) = show_config("mode = \"sandbox\"\n", env);
        assert!(!ok, "accepted {env:?}");
        assert!(stderr.contains(named), "{named} not named: {stderr}");
        assert!(!stderr.contains("sk_test_x"), "{stderr}");
    }
}
