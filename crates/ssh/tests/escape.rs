//! The escape suite: 48 ways out of a sandbox (`tests/probes/escape.py`), tried by the
//! candidate from a real session over a real OpenSSH connection, each asserting it was
//! stopped; and each first tried on the host, as root, where it must get through (a probe
//! that could never succeed would prove nothing). docs/SECURITY.md lists every probe and
//! the mechanism that stops it. Needs root (sandboxes, and the host-side controls).

mod common;
use common::*;
use std::collections::BTreeMap;

const PROBES: &str = include_str!("../../../tests/probes/escape.py");

/// `NAME=yes|no` lines of the probe script's output.
fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.trim().split_once('='))
        .filter(|(k, _)| !k.contains(' ') && *k != "done")
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The host's first non-loopback IPv4 address.
fn other_ip() -> String {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .expect("a non-loopback address on the host")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_candidate_cannot_escape_by_any_of_the_probes() {
    let server = Server::start_with(Options {
        task_extra: "limits:\n  memory: 256M\n  pids: 64\n  disk: 64M\n\
                     files:\n  - path: /opt/probes/escape.py\n    source: escape.py\n    mode: \"0755\"\n",
        task_files: vec![("escape.py", PROBES)],
        ..Options::default()
    })
    .await;
    // What the probes aim at, on the host.
    let marker = format!("tandem-escape-target-{}", std::process::id());
    let mut target = std::process::Command::new("python3")
        .args(["-c", "import time; time.sleep(600)", &marker])
        .spawn()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accept =
        tokio::spawn(async move { while let Ok((_stream, _)) = listener.accept().await {} });
    let secret =
        std::path::PathBuf::from(format!("/root/tandem-escape-secret-{}", std::process::id()));
    std::fs::write(&secret, "host secret\n").unwrap();
    let write_dir = tempfile::Builder::new()
        .prefix("tandem-escape-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let state = server.manager.state.path().canonicalize().unwrap();
    let host_shadow = std::fs::read_to_string("/etc/shadow").unwrap();
    let targets = |mode: &str, disk_dir: &str| {
        serde_json::json!({
            "mode": mode,
            "secret_file": secret,
            "write_dir": write_dir.path(),
            "disk_dir": disk_dir,
            "state_dir": state,
            "tasks_dir": server.tasks.path(),
            "port": port,
            "other_ip": other_ip(),
            "host_pid": target.id(),
            "host_marker": marker,
            "host_shadow_first_line": host_shadow.lines().next().unwrap_or_default(),
            "pids": 64,
            "memory": 256u64 << 20,
            "disk_limit": 64u64 << 20,
        })
        .to_string()
    };

    // The session first: its sandbox's directories and recording are among the targets.
    let (_session, tokens) = server.session(None).await;
    let mut cand = server.ssh(&tokens.candidate, 200, 50);
    cand.expect("demo$ ").await;

    // On the host, as root: every probe gets through.
    let host = std::process::Command::new("python3")
        .arg("-c")
        .arg(PROBES)
        .arg(targets("host", &write_dir.path().display().to_string()))
        .output()
        .unwrap();
    let host_text = String::from_utf8_lossy(&host.stdout).into_owned();
    let host_results = parse(&host_text);
    assert!(host_results.len() >= 30, "{host_text}");
    // `absent`: this kernel lacks the feature (e.g. no module support): nobody can use it.
    let absent: Vec<&String> = host_results
        .iter()
        .filter(|(_, r)| *r == "absent")
        .map(|(n, _)| n)
        .collect();
    for (name, result) in &host_results {
        assert!(
            result == "yes" || result == "absent",
            "on the host, {name} must work: {host_text}"
        );
    }
    eprintln!(
        "escape suite: {} probes, {} work on the host, absent from this kernel: {absent:?}",
        host_results.len(),
        host_results.len() - absent.len()
    );

    // As the candidate, over SSH: every probe is stopped.
    cand.clear();
    cand.send(&format!(
        "python3 /opt/probes/escape.py '{}' 2>&1 | tr '=' '%'; echo probes-$((40+2))\r",
        targets("sandbox", "/tmp")
    ));
    let seen = cand.expect("probes-42").await;
    // The terminal's output: find each probe's `NAME%RESULT` among escape sequences.
    let result_of = |name: &str| {
        let start = seen.find(&format!("{name}%"))? + name.len() + 1;
        seen[start..].split_whitespace().next()
    };
    for name in host_results.keys() {
        assert_eq!(
            result_of(name),
            Some("no"),
            "as the candidate, {name} must be stopped: {seen}"
        );
    }

    // Nothing reached the host.
    let written: Vec<_> = std::fs::read_dir(write_dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    // The host run wrote its own files there; none of the sandbox's (they would be owned by
    // a sandbox uid).
    for name in &written {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(write_dir.path().join(name)).unwrap();
        assert_eq!(meta.uid(), 0, "{name:?} was written from the sandbox");
    }
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host secret\n");
    std::fs::remove_file(&secret).unwrap();
    let _ = target.kill();
    let _ = target.wait();
    accept.abort();
}
