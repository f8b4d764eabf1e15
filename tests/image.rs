//! The image `scripts/image` builds (buildah, FROM scratch, no registry), run as the Deployment
//! runs it: uid 65532, a read-only root, a writable `/tmp`. It holds a stripped binary, the
//! libraries it links, CA certificates, the packaged config and its types; `--version`, `demo`
//! and `serve` (the packaged config, leader election on a Kubernetes API peer) run inside it.
//!
//! The image is built from the binary `cargo test` built (scripts/image strips it), in a buildah
//! storage of the test's own (vfs, in a temporary folder), so no release build and nothing left
//! behind. `buildah run --isolation chroot` runs the image with its own user; it has no
//! `--read-only` (and a read-only bind at `/` fails, as buildah then creates its mount points in
//! it), so the read-only runs are what a runtime does for one: a mount namespace, the
//! container's root bound read-only, a tmpfs at `/tmp` (or none), chroot as the image's user.
//! Both need root, as CI has.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const TAG: &str = "localhost/aws-replicator:test";
const USER: &str = "65532:65532";
const BINARY: &str = "/usr/local/bin/aws-replicator";

/// An image built by scripts/image into a buildah storage that lives as long as this value.
struct Image {
    dir: tempfile::TempDir,
}

impl Image {
    fn build() -> Self {
        assert!(
            Command::new("buildah").arg("--version").output().is_ok(),
            "buildah is missing: apt-get install buildah (scripts/test does, as root)"
        );
        // buildah's rootful storage and the read-only runs' mount namespace need root.
        let uid = std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| {
                l.strip_prefix("Uid:")
                    .map(|u| u.split_whitespace().nth(1).unwrap().to_owned())
            })
            .unwrap();
        assert_eq!(
            uid, "0",
            "tests/image.rs runs containers and needs root, as CI has"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/graph\"\nrunroot = \"{0}/run\"\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let image = Image { dir };
        let out = Command::new("scripts/image")
            .args([
                "--binary",
                env!("CARGO_BIN_EXE_aws-replicator"),
                "--tag",
                TAG,
            ])
            .env("CONTAINERS_STORAGE_CONF", image.storage_conf())
            .output()
            .unwrap();
        assert!(out.status.success(), "scripts/image: {}", text(&out));
        image
    }

    fn storage_conf(&self) -> PathBuf {
        self.dir.path().join("storage.conf")
    }

    fn buildah(&self, args: &[&str]) -> Output {
        let out = Command::new("buildah")
            .args(args)
            .env("CONTAINERS_STORAGE_CONF", self.storage_conf())
            .output()
            .unwrap();
        assert!(out.status.success(), "buildah {args:?}: {}", text(&out));
        out
    }

    fn config(&self) -> Value {
        let out = self.buildah(&["inspect", "--type", "image", TAG]);
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["OCIv1"]["config"].clone()
    }

    /// A container of the image, its root mounted where the host can read it.
    fn container(&self) -> Container<'_> {
        let name = String::from_utf8(self.buildah(&["from", TAG]).stdout).unwrap();
        let name = name.trim().to_owned();
        let root = String::from_utf8(self.buildah(&["mount", &name]).stdout).unwrap();
        Container {
            image: self,
            root: PathBuf::from(root.trim()),
            name,
        }
    }
}

struct Container<'a> {
    image: &'a Image,
    name: String,
    root: PathBuf,
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = Command::new("buildah")
            .args(["rm", &self.name])
            .env("CONTAINERS_STORAGE_CONF", self.image.storage_conf())
            .output();
    }
}

impl Container<'_> {
    /// `buildah run --isolation chroot`, as the image's user, with a tmpfs at `/tmp`.
    fn buildah_run(&self, args: &[&str]) -> Output {
        let mut all = vec![
            "run",
            "--isolation",
            "chroot",
            "--mount",
            "type=tmpfs,destination=/tmp",
            &self.name,
        ];
        all.extend_from_slice(args);
        Command::new("buildah")
            .args(&all)
            .env("CONTAINERS_STORAGE_CONF", self.image.storage_conf())
            .output()
            .unwrap()
    }

    /// The image's binary on a read-only root as uid:gid 65532, with a tmpfs at `/tmp` when
    /// `tmp`, each of `binds` (host folder, folder in the container) bound read-only, and only
    /// the environment given.
    fn read_only(&self, tmp: bool, binds: &[(&Path, &str)], env: &[(String, String)]) -> Command {
        let mut script = String::from(
            "root=$1; shift; mount --bind \"$root\" \"$root\"; mount -t proc proc \"$root/proc\"; ",
        );
        std::fs::create_dir_all(self.root.join("proc")).unwrap();
        for (host, inside) in binds {
            // The mount point goes into the container's layer, not the image.
            std::fs::create_dir_all(self.root.join(inside.trim_start_matches('/'))).unwrap();
            script.push_str(&format!(
                "mount --bind '{0}' \"$root{1}\"; mount -o remount,bind,ro \"$root{1}\"; ",
                host.display(),
                inside
            ));
        }
        script.push_str("mount -o remount,bind,ro \"$root\"; ");
        if tmp {
            script.push_str("mount -t tmpfs -o mode=1777,size=64m tmpfs \"$root/tmp\"; ");
        }
        script.push_str(&format!(
            "exec chroot --userspec={USER} \"$root\" {BINARY} \"$@\""
        ));
        let mut command = Command::new("unshare");
        command
            .args([
                "--mount",
                "--fork",
                "--kill-child",
                "sh",
                "-euc",
                &script,
                "sh",
            ])
            .arg(&self.root)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .envs(env.iter().map(|(k, v)| (k, v)));
        command
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A YAML manifest as JSON, read by the test peers' Python (as tests/deploy.rs does).
fn yaml(path: &str) -> Value {
    let out = Command::new(common::peers::python())
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
            path,
        ])
        .output()
        .expect("the test peers' Python (AWS_REPLICATOR_PYTHON)");
    assert!(out.status.success(), "{path}: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The Deployment's container: its arguments and its environment's names.
fn deployment_container() -> Value {
    yaml("deploy/kubernetes/deployment.yaml")["spec"]["template"]["spec"]["containers"][0].clone()
}

/// The demo's last line, once it has converged and repaired the drift it made.
fn assert_demo_converged(out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && stdout.contains("5. Drift after the repair: 0 operation(s) pending"),
        "{}",
        text(out)
    );
}

/// What `scripts/image` puts in the image: a stripped binary (no debug sections, no symbol
/// table) that runs with only the libraries copied beside it, the packaged config and its types
/// exactly as the repository has them, uid 65532, and the Deployment's command as the default.
#[test]
fn the_image_holds_a_stripped_binary_its_libraries_and_the_packaged_config() {
    let image = Image::build();
    let config = image.config();
    assert_eq!(config["User"], USER);
    assert_eq!(config["Entrypoint"], serde_json::json!([BINARY]));
    assert_eq!(
        config["Cmd"],
        deployment_container()["args"],
        "the Deployment's args"
    );
    assert_eq!(
        config["Labels"]["org.opencontainers.image.version"],
        VERSION
    );

    let container = image.container();
    let root = &container.root;
    let sections = Command::new("readelf")
        .args(["--section-headers", "--wide"])
        .arg(root.join(BINARY.trim_start_matches('/')))
        .output()
        .unwrap();
    let sections = String::from_utf8_lossy(&sections.stdout);
    assert!(sections.contains(".text"), "{sections}");
    assert!(
        [".debug_info", ".debug_line", ".symtab"]
            .iter()
            .all(|s| !sections.contains(s)),
        "the binary in the image is not stripped:\n{sections}"
    );
    let size = std::fs::metadata(root.join(BINARY.trim_start_matches('/')))
        .unwrap()
        .len();
    assert!(size < 100 << 20, "{size} bytes");

    assert_eq!(
        std::fs::read_to_string(root.join("etc/aws-replicator/config.dhall")).unwrap(),
        std::fs::read_to_string("deploy/kubernetes/config/config.dhall").unwrap()
    );
    for entry in std::fs::read_dir("config/types").unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("etc/aws-replicator/types").join(name)).unwrap(),
            std::fs::read_to_string(&path).unwrap(),
            "{name}"
        );
    }
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(passwd.contains("nonroot:x:65532:65532:"), "{passwd}");
    assert!(
        root.join("etc/ssl/certs/ca-certificates.crt")
            .metadata()
            .unwrap()
            .len()
            > 0
    );
    let tmp = std::os::unix::fs::PermissionsExt::mode(
        &root.join("tmp").metadata().unwrap().permissions(),
    );
    assert_eq!(tmp & 0o7777, 0o1777);

    // Under buildah, as the image's user: the version, and the demo through its real clients
    // (TLS set up from the image's CA certificates; without them it would not start).
    let out = container.buildah_run(&[BINARY, "--version"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("aws-replicator {VERSION}")
    );
    assert_demo_converged(&container.buildah_run(&[BINARY, "demo"]));
}

/// On a read-only root the demo runs with a writable `/tmp`; without one it fails naming the
/// folder it wanted and what to mount, not a bare "Read-only file system".
#[test]
fn demo_runs_on_a_read_only_root_and_names_a_missing_tmp() {
    let image = Image::build();
    let container = image.container();
    let out = container
        .read_only(true, &[], &[])
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("aws-replicator {VERSION}"),
        "{}",
        text(&out)
    );
    assert_demo_converged(
        &container
            .read_only(true, &[], &[])
            .arg("demo")
            .output()
            .unwrap(),
    );

    let out = container
        .read_only(false, &[], &[])
        .arg("demo")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        stderr.contains("/tmp/aws-replicator-demo-")
            && stderr.contains("Read-only file system")
            && stderr.contains("mount one at /tmp")
            && stderr.contains("TMPDIR"),
        "{stderr}"
    );
}

/// Outside a container too: a TMPDIR the demo cannot write to is named, with the way out.
#[test]
fn demo_names_a_temporary_folder_it_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_folder = dir.path().join("file");
    std::fs::write(&not_a_folder, "").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_aws-replicator"))
        .arg("demo")
        .env("TMPDIR", &not_a_folder)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{}/aws-replicator-demo-", not_a_folder.display()))
            && stderr.contains("Not a directory")
            && stderr.contains("point TMPDIR at one"),
        "{stderr}"
    );
}

/// `serve` in the image as the Deployment starts it: the packaged config, the Secret's variables
/// (placeholders), the pod's name and namespace, JSON logs, on a read-only root with a tmpfs at
/// `/tmp`, as uid 65532. It takes the Lease on a Kubernetes API peer, answers `/healthz` and
/// `/metrics` (with `build_info`), takes the webhook token from the environment, and its first
/// line says what runs: version, platform, webhook authentication, leader election.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_in_the_image_from_the_packaged_config() {
    let image = Image::build();
    let container = image.container();
    let namespace = "replicators";
    let kube = common::kube_api::KubeApi::start(namespace).await;
    let kube_dir = tempfile::tempdir().unwrap();
    let kubeconfig = kube.kubeconfig(kube_dir.path(), namespace, "image");
    // Readable by uid 65532, as a mounted Secret or ConfigMap is.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(kube_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&kubeconfig, std::fs::Permissions::from_mode(0o644)).unwrap();
    let logs = tempfile::tempdir().unwrap();

    let secret = yaml("deploy/kubernetes/secret.example.yaml");
    let mut env: Vec<(String, String)> = secret["stringData"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| {
            (
                k.clone(),
                format!("placeholder-{}-0123456789", k.to_lowercase()),
            )
        })
        .collect();
    let token = env
        .iter()
        .find(|(k, _)| k == "WEBHOOK_TOKEN")
        .unwrap()
        .1
        .clone();
    let pod = "aws-replicator-7d9f-abcde";
    kube.add_pod(namespace, pod);
    let deployment = deployment_container();
    for var in deployment["env"].as_array().unwrap() {
        let name = var["name"].as_str().unwrap().to_owned();
        let value = match name.as_str() {
            "POD_NAME" => pod.to_owned(),
            "POD_NAMESPACE" => namespace.to_owned(),
            _ => var["value"].as_str().unwrap().to_owned(),
        };
        env.push((name, value));
    }
    env.push((
        "KUBECONFIG".into(),
        format!(
            "/var/run/kube/{}",
            kubeconfig.file_name().unwrap().to_str().unwrap()
        ),
    ));
    // AWS stays out of reach (a closed port), wherever the test runs.
    env.push(("AWS_ENDPOINT_URL".into(), "http://127.0.0.1:9".into()));

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut args: Vec<String> = deployment["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    *args.last_mut().unwrap() = listen.clone();
    // The packaged config's metrics listener (0.0.0.0:9090) on loopback, as --listen above.
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_base = format!("http://127.0.0.1:{metrics_port}");
    args.extend([
        "--metrics-listen".to_owned(),
        format!("127.0.0.1:{metrics_port}"),
    ]);
    let stderr_path = logs.path().join("stderr");
    let mut child = container
        .read_only(true, &[(kube_dir.path(), "/var/run/kube")], &env)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    struct Kill(u32);
    impl Drop for Kill {
        fn drop(&mut self) {
            // unshare --kill-child takes serve down with it.
            let _ = Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
    let _kill = Kill(child.id());

    let base = format!("http://{listen}");
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "serve did not answer /healthz: {}",
            std::fs::read_to_string(&stderr_path).unwrap()
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "serve stopped: {}",
            std::fs::read_to_string(&stderr_path).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while kube.holder(namespace, "aws-replicator").is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "serve never took the Lease"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        kube.holder(namespace, "aws-replicator").as_deref(),
        Some(pod)
    );

    let metrics = http
        .get(format!("{metrics_base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!(
            "aws_replicator_build_info{{version=\"{VERSION}\"}} 1"
        )),
        "{metrics}"
    );
    let runs = |bearer: Option<String>| {
        let mut request = http.get(format!("{base}/v1/runs"));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        request.send()
    };
    assert_eq!(runs(Some(token)).await.unwrap().status(), 200);
    assert_eq!(runs(None).await.unwrap().status(), 401);

    // The process that serves: uid 65532, a read-only root, a writable /tmp.
    let serve = serve_pid(child.id());
    let status = std::fs::read_to_string(format!("/proc/{serve}/status")).unwrap();
    assert!(
        status.contains("Uid:\t65532\t65532\t65532\t65532"),
        "{status}"
    );
    let mounts = std::fs::read_to_string(format!("/proc/{serve}/mountinfo")).unwrap();
    let options = |point: &str| {
        mounts
            .lines()
            .map(|l| l.split(' ').collect::<Vec<_>>())
            .filter(|f| f[4] == point)
            .map(|f| f[5].to_owned())
            .next_back()
            .unwrap_or_else(|| panic!("no mount at {point}: {mounts}"))
    };
    let (root_options, tmp_options) = (options("/"), options("/tmp"));
    assert!(root_options.split(',').any(|o| o == "ro"), "{root_options}");
    assert!(tmp_options.split(',').any(|o| o == "rw"), "{tmp_options}");

    let _ = Command::new("kill")
        .args(["-TERM", &serve.to_string()])
        .status();
    let stopped = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            stopped.elapsed() < Duration::from_secs(30),
            "serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    let first: Value = serde_json::from_str(stderr.lines().next().unwrap())
        .unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(first["level"], "INFO", "{first}");
    assert_eq!(
        first["message"],
        format!("starting aws-replicator {VERSION}"),
        "{first}"
    );
    assert_eq!(first["version"], VERSION, "{first}");
    assert_eq!(first["platform"], "aws.aws-meshcloud", "{first}");
    assert_eq!(first["os"], "linux", "{first}");
    assert_eq!(first["webhook_auth"], "bearer token", "{first}");
    assert_eq!(first["leader_election"], true, "{first}");
    assert_eq!(
        first["lease"],
        format!("{namespace}/aws-replicator"),
        "{first}"
    );
    assert_eq!(first["listen"], listen, "{first}");
}

/// The process unshare forked: after `sh` and `chroot` exec'd, aws-replicator itself.
fn serve_pid(unshare: u32) -> u32 {
    for entry in std::fs::read_dir("/proc").unwrap() {
        let Ok(pid) = entry.unwrap().file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid …; comm may hold spaces, so read after the last ')'.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let ppid: u32 = after.split(' ').nth(1).unwrap().parse().unwrap();
        if ppid == unshare {
            return pid;
        }
    }
    panic!("no process under unshare {unshare}");
}

/// The Dockerfile, for those who can pull: fully qualified base images pinned by digest, the
/// binary stripped, and the runtime stage the image scripts/image builds (user, entrypoint, the
/// Deployment's command, the packaged config and types).
#[test]
fn the_dockerfile_pins_its_base_images_and_matches_the_image() {
    let dockerfile = std::fs::read_to_string("Dockerfile").unwrap();
    let lines: Vec<&str> = dockerfile.lines().filter(|l| !l.starts_with('#')).collect();
    let from: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("FROM "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(from.len(), 2, "{from:?}");
    for reference in &from {
        let (name, digest) = reference
            .split_once("@sha256:")
            .unwrap_or_else(|| panic!("{reference} is not pinned by digest"));
        assert!(
            digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
            "{reference}"
        );
        assert!(
            name.split('/').next().unwrap().contains('.') && name.contains(':'),
            "{reference} is not fully qualified (registry/name:tag)"
        );
    }
    let runtime: Vec<&str> = lines
        .iter()
        .skip_while(|l| !l.starts_with(&format!("FROM {}", from[1])))
        .copied()
        .collect();
    let instruction = |name: &str| {
        runtime
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in the runtime stage"))
    };
    assert_eq!(instruction("USER"), USER);
    assert_eq!(
        serde_json::from_str::<Value>(instruction("ENTRYPOINT")).unwrap(),
        serde_json::json!([BINARY])
    );
    assert_eq!(
        serde_json::from_str::<Value>(instruction("CMD")).unwrap(),
        deployment_container()["args"]
    );
    for copy in [
        format!("COPY --from=build /aws-replicator {BINARY}"),
        "COPY config/types /etc/aws-replicator/types".to_owned(),
        "COPY deploy/kubernetes/config/config.dhall /etc/aws-replicator/config.dhall".to_owned(),
    ] {
        assert!(runtime.contains(&copy.as_str()), "{copy}");
    }
    assert!(
        dockerfile.contains("&& strip -o /aws-replicator target/release/aws-replicator"),
        "the build stage strips the binary"
    );
}
