//! Test peers that run as separate processes (moto, scim2-server): started on a free loopback port for one
//! test and stopped by PID when the guard is dropped.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Peer {
    child: Child,
    pub endpoint: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process a test started (the replicator's `serve`): stopped by PID when dropped, so that a
/// failing assertion does not leave it running.
pub struct Spawned(pub Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(program: &str, args: &[String], port: u16, endpoint: String) -> Peer {
    let child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {program} ({e}); run the tests with ./scripts/test, which installs the peers")
        });
    let peer = Peer { child, endpoint };
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{program} did not start in 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    peer
}

/// scim2-server (strict RFC 7644) with cursor paging, from `AWS_REPLICATOR_SCIM2_SERVER` (set by
/// `scripts/test`) or the PATH. Its endpoint is `http://127.0.0.1:<port>/<tenant>/v2/`.
pub fn scim2_server(token: &str) -> Peer {
    let program =
        std::env::var("AWS_REPLICATOR_SCIM2_SERVER").unwrap_or_else(|_| "scim2-server".into());
    let port = free_port();
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/peers/scim2-server-cursor.json"
    );
    let args: Vec<String> = [
        "--hostname",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--bearer-token",
        token,
        "--dynamic-tenants",
        "--service-provider-config",
        config,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    start(
        &program,
        &args,
        port,
        format!("http://127.0.0.1:{port}/replicator/v2/"),
    )
}

/// `moto_server` from `AWS_REPLICATOR_MOTO_SERVER` (set by `scripts/test`) or the PATH.
pub fn moto() -> Peer {
    moto_with(&[], None)
}

/// moto with extra environment (e.g. `MOTO_ENABLE_RECORDING`), started in `dir` (where its
/// recorder writes).
pub fn moto_with(env: &[(&str, &str)], dir: Option<&std::path::Path>) -> Peer {
    let program =
        std::env::var("AWS_REPLICATOR_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
    let port = free_port();
    let mut command = Command::new(&program);
    command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let child = command.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot start {program} ({e}); run the tests with ./scripts/test, which installs moto"
        )
    });
    let peer = Peer {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "moto did not start in 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    peer
}

/// The Python of the test peers' virtualenv (`AWS_REPLICATOR_PYTHON`, set by `scripts/test`),
/// where boto3 comes with moto.
pub fn python() -> String {
    std::env::var("AWS_REPLICATOR_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// `python -c script` with boto3 pointed at moto (its endpoint) as moto's default account.
pub fn boto3(moto: &str, script: &str) -> Command {
    let mut command = Command::new(python());
    command
        .args(["-c", script])
        .env("AWS_ENDPOINT_URL", moto)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "eu-central-1");
    command
}
