//! What the binary exposes on the network: nothing unless `--metrics-addr`
//! is given, only the address given when it is, and every address the
//! shipped configurations and the help suggest is loopback.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a daemon may take to log its first failed scan.
const LIMIT: Duration = Duration::from_secs(30);

/// A daemon against an engine that does not exist (its scans fail), and its
/// stderr lines as they come.
fn daemon(extra: &[&str]) -> (Child, mpsc::Receiver<String>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = format!("unix://{}/absent.sock", dir.path().display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_cascade-janitor"))
        .args([
            "run",
            "--interval",
            "1s",
            "--min-sweep-gap",
            "1s",
            "--no-events",
        ])
        .args(["--docker-host", &host])
        .args(extra)
        .env_remove("DOCKER_HOST")
        .env_remove("SENTRY_DSN")
        .env_remove("CASCADE_JANITOR_METRICS_ADDR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx, dir)
}

/// Waits for a line containing `text`; every line seen so far.
fn wait_for(rx: &mpsc::Receiver<String>, text: &str) -> Vec<String> {
    let deadline = Instant::now() + LIMIT;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(text);
                seen.push(line);
                if found {
                    return seen;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no line with `{text}` within {LIMIT:?}: {seen:#?}");
}

/// The TCP sockets process `pid` listens on.
fn listening(pid: u32) -> Vec<SocketAddr> {
    let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the process's fds")
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_string(),
            )
        })
        .collect();
    let mut found = Vec::new();
    for (table, v6) in [("tcp", false), ("tcp6", true)] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address, st (0A: LISTEN), inode
            if fields.len() > 9 && fields[3] == "0A" && inodes.contains(fields[9]) {
                found.push(proc_address(fields[1], v6));
            }
        }
    }
    found
}

/// `0100007F:1F90` (or its 32-hex IPv6 form) as an address: the kernel
/// writes each 32-bit word in host order (little-endian here).
fn proc_address(text: &str, v6: bool) -> SocketAddr {
    let (ip, port) = text.split_once(':').expect("ADDR:PORT");
    let port = u16::from_str_radix(port, 16).expect("port");
    let words: Vec<u32> = (0..ip.len() / 8)
        .map(|i| u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16).expect("hex"))
        .collect();
    let ip = if v6 {
        let mut bytes = [0u8; 16];
        for (i, word) in words.iter().enumerate() {
            bytes[i * 4..i * 4 + 4].copy_from_slice(&word.to_le_bytes());
        }
        IpAddr::V6(Ipv6Addr::from(bytes))
    } else {
        IpAddr::V4(Ipv4Addr::from(words[0].to_le_bytes()))
    };
    SocketAddr::new(ip, port)
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// Without `--metrics-addr` the daemon listens on nothing; with
/// `127.0.0.1:0` it listens on loopback only.
#[test]
fn the_daemon_listens_on_nothing_by_default_and_only_where_told() {
    let out = Command::new(env!("CARGO_BIN_EXE_cascade-janitor"))
        .args(["run", "--print-config"])
        .env_remove("CASCADE_JANITOR_METRICS_ADDR")
        .output()
        .expect("runs");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed
            .lines()
            .any(|l| l.starts_with("# metrics_addr not set (off)") && l.ends_with("# default")),
        "{printed}"
    );

    let (child, rx, _dir) = daemon(&[]);
    wait_for(&rx, "scan failed");
    assert_eq!(listening(child.id()), Vec::<SocketAddr>::new());
    stop(child);

    let (child, rx, _dir) = daemon(&["--metrics-addr", "127.0.0.1:0"]);
    let lines = wait_for(&rx, "serving /metrics and /healthz on http://");
    wait_for(&rx, "scan failed");
    let addresses = listening(child.id());
    assert_eq!(addresses.len(), 1, "{addresses:?}");
    assert_eq!(addresses[0].ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    let announced = format!("http://{}", addresses[0]);
    assert!(
        lines.iter().any(|l| l.contains(&announced)),
        "{announced} in {lines:#?}"
    );
    stop(child);
}

/// Every `IP:9464` a shipped configuration or the help suggests.
fn suggested(text: &str) -> Vec<IpAddr> {
    text.split(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | '(' | ')'))
        .filter_map(|word| word.strip_suffix(":9464"))
        .filter_map(|ip| {
            ip.trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .ok()
        })
        .collect()
}

/// The systemd unit, the config file and the Compose file suggest a
/// loopback metrics address, and so does `--help`. Kubernetes is the one
/// exception: Prometheus scrapes the pod's own address there (the pod
/// network, not the node's), which the DaemonSet says.
#[test]
fn every_suggested_metrics_address_is_loopback() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let help = Command::new(env!("CARGO_BIN_EXE_cascade-janitor"))
        .args(["run", "--help"])
        .output()
        .expect("runs");
    let mut sources = vec![(
        "run --help".to_string(),
        String::from_utf8_lossy(&help.stdout).into_owned(),
    )];
    for file in [
        "systemd/cascade-janitor.service",
        "config.toml",
        "compose.yaml",
    ] {
        let text = std::fs::read_to_string(deploy.join(file)).expect(file);
        sources.push((file.to_string(), text));
    }
    for (source, text) in sources {
        let ips = suggested(&text);
        assert!(!ips.is_empty(), "{source} suggests no metrics address");
        for ip in ips {
            assert!(ip.is_loopback(), "{source} suggests {ip}:9464");
        }
    }
    let kubernetes =
        std::fs::read_to_string(deploy.join("kubernetes/daemonset.yaml")).expect("daemonset");
    assert_eq!(
        suggested(&kubernetes),
        vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)],
        "the DaemonSet serves on the pod's address"
    );
}

#[test]
fn proc_addresses_read_as_the_kernel_writes_them() {
    assert_eq!(
        proc_address("0100007F:1F90", false),
        "127.0.0.1:8080".parse().expect("addr")
    );
    assert_eq!(
        proc_address("00000000000000000000000001000000:0050", true),
        "[::1]:80".parse().expect("addr")
    );
}
