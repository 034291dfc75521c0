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
