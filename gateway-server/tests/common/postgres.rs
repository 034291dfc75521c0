//! A throwaway PostgreSQL cluster for the tests of one test binary.
//!
//! The first test that needs it runs `initdb` in a temporary directory and
//! starts `postgres` on a free loopback port (no fsync: nothing here must
//! survive). PostgreSQL refuses to run as root, so as root it runs as the
//! unprivileged user `gatewaypg` (created if missing). A small supervisor
//! shell waits for the test process to exit, then stops the cluster and
//! removes the directory. Every test gets a database of its own.
//!
//! The programs come from `$GATEWAY_TEST_PG_BIN`, else
//! `/usr/lib/postgresql/15/bin` (Debian's `postgresql-15`), else `PATH`.
//!
//! The cluster is found through a directory named after the process id:
//! whoever creates it starts the cluster, anyone else in the process waits for
//! its port, so a process has one cluster however many copies of this file
//! it compiles. The file stands alone (it needs only `sqlx`, `tokio` and
//! `uuid`): any test target can include it with `#[path]`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor, Row};

/// The unprivileged user PostgreSQL runs as when the tests run as root.
const USER: &str = "gatewaypg";

/// A running cluster.
#[derive(Debug)]
pub struct Cluster {
    pub port: u16,
    /// The data directory.
    pub data: PathBuf,
}

/// A database of its own for one test.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    pub url: String,
    pub name: String,
    /// Its directory under `base/`, to look at what is stored at rest.
    pub oid: i64,
    pub data: PathBuf,
}

impl TestDatabase {
    /// The bytes of this database's files, after a checkpoint wrote every
    /// committed change into them: what it stores at rest.
    pub fn bytes(&self) -> Vec<u8> {
        let url = self.url.clone();
        // Callers are synchronous and may run on a single-threaded runtime: checkpoint on a thread of its own.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
                conn.execute("CHECKPOINT").await.expect("checkpoint");
                let _ = conn.close().await;
            });
        })
        .join()
        .expect("checkpoint thread");
        let mut bytes = Vec::new();
        let dir = self.data.join("base").join(self.oid.to_string());
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|kind| kind.is_file()) {
                if let Ok(mut data) = std::fs::read(entry.path()) {
                    bytes.append(&mut data);
                }
            }
        }
        bytes
    }
}

/// The cluster, started on first use.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("gateway-test-pg-{}", std::process::id()));
        match std::fs::create_dir(&root) {
            Ok(()) => start(&root),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => wait_for(&root),
            Err(error) => panic!("cannot create {}: {error}", root.display()),
        }
    })
}

/// A new, empty database on the cluster.
pub async fn fresh_database() -> TestDatabase {
    // Blocks this test's thread while the first test starts the cluster (a few seconds, once).
    let cluster = cluster();
    let name = format!("t_{}", uuid::Uuid::now_v7().simple());
    let mut admin = sqlx::PgConnection::connect(&format!(
        "postgres://postgres@127.0.0.1:{}/postgres",
        cluster.port
    ))
    .await
    .expect("connect to the test cluster");
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("create a test database");
    let oid: i64 = sqlx::query("SELECT oid::bigint FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(&mut admin)
        .await
        .and_then(|row| row.try_get(0))
        .expect("the database's oid");
    let _ = admin.close().await;
    TestDatabase {
        url: format!("postgres://postgres@127.0.0.1:{}/{name}", cluster.port),
        name,
        oid,
        data: cluster.data.clone(),
    }
}

fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GATEWAY_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let debian = Path::new("/usr/lib/postgresql/15/bin");
    if debian.join("initdb").exists() {
        return debian.to_owned();
    }
    // On PATH, or nowhere: the error names the program.
    PathBuf::new()
}

fn program(name: &str) -> String {
    let dir = bin_dir();
    if dir.as_os_str().is_empty() {
        name.to_owned()
    } else {
        dir.join(name).display().to_string()
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

/// `program args…`, as the unprivileged user when we are root.
fn as_user(root: bool, program: &str) -> Command {
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", USER, "--", program]);
        command
    } else {
        Command::new(program)
    }
}

fn run(mut command: Command, what: &str) {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("{what}: {error} (is PostgreSQL 15 installed? see .ci/run)"));
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

// The supervisor outlives this process by design: it is never waited for.
#[allow(clippy::zombie_processes)]
fn start(root: &Path) -> Cluster {
    let root_user = is_root();
    if root_user {
        let exists = Command::new("id")
            .arg(USER)
            .output()
            .is_ok_and(|output| output.status.success());
        if !exists {
            // Another test binary may create it at the same moment: check again after.
            let _ = Command::new("useradd")
                .args([
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    USER,
                ])
                .output();
        }
        let mut chown = Command::new("chown");
        chown.args([USER, &root.display().to_string()]);
        run(chown, "chown the test cluster directory");
    }
    let data = root.join("data");
    let mut initdb = as_user(root_user, &program("initdb"));
    initdb.arg("-D").arg(&data).args([
        "-U",
        "postgres",
        "-A",
        "trust",
        "-E",
        "UTF8",
        "--no-locale",
        "--no-sync",
    ]);
    run(initdb, "initdb");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port");
    // The supervisor: starts postgres, waits for this process to end, stops it, removes the directory.
    let script = r#"
        trap '' INT TERM HUP
        test_pid=$1 root=$2 bin=$3 user=$4 port=$5
        as_user() { if [ -n "$user" ]; then runuser -u "$user" -- "$@"; else "$@"; fi; }
        as_user "$bin/postgres" -D "$root/data" -p "$port" -k "$root" \
            -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
            -c full_page_writes=off -c max_connections=400 -c shared_buffers=64MB \
            >"$root/postgres.log" 2>&1 &
        while kill -0 "$test_pid" 2>/dev/null; do sleep 0.2; done
        as_user "$bin/pg_ctl" stop -D "$root/data" -m immediate -w >/dev/null 2>&1
        wait
        rm -rf "$root"
    "#;
    let bin = bin_dir();
    let bin = if bin.as_os_str().is_empty() {
        // postgres and pg_ctl from PATH: find their directory.
        Command::new("sh")
            .args(["-c", "dirname \"$(command -v postgres)\""])
            .output()
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
            .unwrap_or_default()
    } else {
        bin.display().to_string()
    };
    Command::new("sh")
        .args(["-c", script, "sh"])
        .arg(std::process::id().to_string())
        .arg(root)
        .arg(&bin)
        .arg(if root_user { USER } else { "" })
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the PostgreSQL supervisor");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = Command::new(program("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-q"])
            .status()
            .is_ok_and(|status| status.success());
        if ready {
            break;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(root.join("postgres.log")).unwrap_or_default();
            panic!("the test PostgreSQL did not start:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let marker = root.join("port.tmp");
    std::fs::write(&marker, port.to_string()).expect("write the port");
    std::fs::rename(&marker, root.join("port")).expect("publish the port");
    Cluster { port, data }
}

fn wait_for(root: &Path) -> Cluster {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(text) = std::fs::read_to_string(root.join("port")) {
            if let Ok(port) = text.trim().parse() {
                return Cluster {
                    port,
                    data: root.join("data"),
                };
            }
        }
        assert!(Instant::now() < deadline, "the test PostgreSQL did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}
