//! tandem's shared terminal against OpenSSH `sshd` + one shared `tmux` session, measured
//! side by side in one run with real OpenSSH clients on pseudo-terminals:
//!
//! * keystroke echo (a marker typed by the candidate until it is echoed back on the
//!   candidate's terminal) with 0, 10 and 50 watchers, and with 10 watchers one of which
//!   is stopped (SIGSTOP: a client that stops reading);
//! * a 100 MiB output burst with 1, 10 and 50 watchers, one of them stopped: the time until
//!   the candidate and every live watcher have seen its end.
//!
//! Both systems have their clients connected at the same time; echo samples alternate
//! between them in batches. Run as root: `bench/ssh.sh` (starts a private `sshd` on a
//! loopback port with its own host key and config). Prints a Markdown table.

#[path = "../tests/common/mod.rs"]
mod common;

use common::SshClient;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Echo samples are taken in batches alternating between the systems.
const BATCH: usize = 25;

/// Echo samples per system and case: `ECHO_KEYS` (default 400), a whole number of batches.
fn keys() -> usize {
    let keys: usize = std::env::var("ECHO_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    keys.div_ceil(BATCH).max(1) * BATCH
}

/// The burst: 100 MiB of 73-character lines, then a marker the command line itself does
/// not contain (the shell computes it).
const BURST_BYTES: usize = 100 << 20;
/// What fills a stalled watcher's queue, socket buffers and client (16 MiB).
const FILL_BYTES: usize = 16 << 20;
const BURST_END: &str = "BURST-42-END";

fn burst_command(bytes: usize) -> String {
    format!(
        "yes 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \
         | head -c {bytes}; echo BURST-$((6*7))-END\r"
    )
}
/// How long a burst may take before it is reported as not finished.
const BURST_LIMIT: Duration = Duration::from_secs(60);

/// A private sshd (loopback, own host key and config) whose logins attach to tmux.
struct Tmux {
    dir: tempfile::TempDir,
    port: u16,
    sshd: std::process::Child,
}

fn run(cmd: &mut Command) {
    let status = cmd.status().expect("run a command");
    assert!(status.success(), "{cmd:?} failed: {status}");
}

impl Tmux {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for key in ["host_key", "client_key"] {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(key)));
        }
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             StrictModes no\nMaxStartups 200\nMaxSessions 200\nPrintMotd no\nPrintLastLog no\n\
             AcceptEnv none\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        let sshd = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stderr(std::fs::File::create(d.join("sshd.log")).unwrap())
            .spawn()
            .expect("run /usr/sbin/sshd");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { dir, port, sshd }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("tmux.sock")
    }

    /// A new shared tmux session running the same shell as tandem's demo task.
    fn session(&self, name: &str) {
        run(Command::new("tmux")
            .arg("-S")
            .arg(self.socket())
            .args([
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                name,
                "-x",
                "80",
                "-y",
                "24",
            ])
            .arg("env PS1='demo$ ' /bin/bash --norc -i"));
    }

    fn end_session(&self, name: &str) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(self.socket())
            .args(["kill-session", "-t", name])
            .status();
    }

    /// An OpenSSH client attached to tmux session `name` (watchers read-only).
    fn client(&self, name: &str, watcher: bool) -> SshClient {
        let key = self.dir.path().join("client_key");
        let command = format!(
            "RemoteCommand=exec tmux -S {} attach {}-t {name}",
            self.socket().display(),
            if watcher { "-r " } else { "" }
        );
        SshClient::spawn(
            self.port,
            "root",
            80,
            24,
            &[
                "-i",
                key.to_str().unwrap(),
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                &command,
            ],
        )
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(self.socket())
            .arg("kill-server")
            .status();
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
    }
}

/// A watcher: its client reads everything in the background and reports when it has
/// seen the burst's end.
struct Watcher {
    pid: nix::unistd::Pid,
    saw_end: Option<oneshot::Receiver<Instant>>,
    task: JoinHandle<()>,
}

impl Watcher {
    fn new(mut client: SshClient) -> Self {
        let pid = nix::unistd::Pid::from_raw(client.child.id().unwrap() as i32);
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            client
                .skip_until(BURST_END, Duration::from_secs(3600))
                .await;
            let _ = tx.send(Instant::now());
            client
                .skip_until("\u{1}never", Duration::from_secs(3600))
                .await;
        });
        Self {
            pid,
            saw_end: Some(rx),
            task,
        }
    }

    fn stop(&mut self) {
        nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
        self.saw_end = None;
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
        let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGCONT);
    }
}

/// One system's candidate and watchers.
struct Side {
    candidate: SshClient,
    watchers: Vec<Watcher>,
    echo: Vec<Duration>,
}

impl Side {
    async fn connect(candidate: SshClient, mut watchers: Vec<SshClient>) -> Self {
        let mut candidate = candidate;
        candidate.expect("demo$ ").await;
        for w in &mut watchers {
            w.expect("demo$ ").await;
        }
        Self {
            candidate,
            watchers: watchers.into_iter().map(Watcher::new).collect(),
            echo: Vec::new(),
        }
    }

    async fn echo(&mut self, keys: std::ops::Range<usize>) {
        for i in keys {
            // A marker no escape sequence contains, typed at the prompt and echoed back;
            // then Enter, and the next prompt, before the next sample.
            let key = format!("x{i}y");
            self.candidate.clear();
            let t = Instant::now();
            self.candidate.send(&key);
            self.candidate.expect(&key).await;
            self.echo.push(t.elapsed());
            self.candidate.clear();
            self.candidate.send("\r");
            self.candidate.expect("demo$ ").await;
        }
    }

    /// Time from typing the burst until the candidate and every live watcher saw its end;
    /// `None` if that took longer than [`BURST_LIMIT`].
    async fn burst(&mut self, bytes: usize) -> Option<Duration> {
        let start = Instant::now();
        self.candidate.send(&burst_command(bytes));
        let all = async {
            self.candidate.skip_until(BURST_END, BURST_LIMIT * 2).await;
            let mut last = Instant::now();
            for w in &mut self.watchers {
                if let Some(rx) = w.saw_end.take() {
                    last = last.max(rx.await.expect("watcher saw the end"));
                }
            }
            self.candidate.expect("demo$ ").await;
            last - start
        };
        let done = tokio::time::timeout(BURST_LIMIT, all).await.ok();
        if done.is_none() {
            // Interrupt it so that it does not load the machine for the other side.
            self.candidate.send("\x03");
        }
        done
    }
}

fn percentile(times: &[Duration], p: f64) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Echo on both sides, alternating batches; returns (tandem, tmux) samples.
async fn echo_both(a: &mut Side, b: &mut Side) -> (Vec<Duration>, Vec<Duration>) {
    a.echo.clear();
    b.echo.clear();
    for batch in 0..keys() / BATCH {
        let keys = batch * BATCH..(batch + 1) * BATCH;
        if batch % 2 == 0 {
            a.echo(keys.clone()).await;
            b.echo(keys).await;
        } else {
            b.echo(keys.clone()).await;
            a.echo(keys).await;
        }
    }
    (a.echo.clone(), b.echo.clone())
}

fn echo_row(case: &str, tandem: &[Duration], tmux: &[Duration]) {
    let (t50, t99) = (percentile(tandem, 0.5), percentile(tandem, 0.99));
    let (m50, m99) = (percentile(tmux, 0.5), percentile(tmux, 0.99));
    println!(
        "| echo, {case}, {} keys | {} · {} | {} · {} | {:.2} · {:.2} |",
        tandem.len(),
        ms(t50),
        ms(t99),
        ms(m50),
        ms(m99),
        t50.as_secs_f64() / m50.as_secs_f64(),
        t99.as_secs_f64() / m99.as_secs_f64()
    );
}

fn burst_row(watchers: usize, tandem: Option<Duration>, tmux: Option<Duration>) {
    let show = |d: Option<Duration>| match d {
        Some(d) => format!("{:.2} s", d.as_secs_f64()),
        None => format!("not within {} s", BURST_LIMIT.as_secs()),
    };
    let ratio = match (tandem, tmux) {
        (Some(a), Some(b)) => format!("{:.2}", a.as_secs_f64() / b.as_secs_f64()),
        _ => "–".into(),
    };
    println!(
        "| 100 MiB burst, {watchers} watcher(s), 1 stopped: until every live client has it | {} | {} | {ratio} |",
        show(tandem),
        show(tmux)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let server = common::Server::start().await;
    let tmux = Tmux::start();
    println!("| case | tandem p50 · p99 | OpenSSH + tmux p50 · p99 | ratio p50 · p99 |");
    println!("|---|---|---|---|");
    // ECHO_CASES="0 10 1 50" (the default) picks the watcher counts to run.
    let cases: Vec<usize> = std::env::var("ECHO_CASES")
        .ok()
        .map(|v| {
            v.split_whitespace()
                .filter_map(|c| c.parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![0, 10, 1, 50]);
    for (group, watchers) in cases.into_iter().enumerate() {
        let name = format!("bench{group}");
        eprintln!("{watchers} watchers: connecting");
        let (_session, tokens) = server.session(None).await;
        tmux.session(&name);
        let mut t = Side::connect(
            server.ssh(&tokens.candidate, 80, 24),
            (0..watchers)
                .map(|_| server.ssh(&tokens.observer, 80, 24))
                .collect(),
        )
        .await;
        let mut m = Side::connect(
            tmux.client(&name, false),
            (0..watchers).map(|_| tmux.client(&name, true)).collect(),
        )
        .await;
        let live = watchers != 1;
        if live {
            let (a, b) = echo_both(&mut t, &mut m).await;
            echo_row(&format!("{watchers} watchers"), &a, &b);
        }
        if watchers == 0 {
            drop((t, m));
            tmux.end_session(&name);
            continue;
        }
        eprintln!("{watchers} watchers: burst");
        // One watcher stops reading; the burst fills whatever it holds.
        t.watchers[0].stop();
        m.watchers[0].stop();
        let (bt, bm) = if group % 2 == 0 {
            let bt = t.burst(BURST_BYTES).await;
            (bt, m.burst(BURST_BYTES).await)
        } else {
            let bm = m.burst(BURST_BYTES).await;
            (t.burst(BURST_BYTES).await, bm)
        };
        burst_row(watchers, bt, bm);
        // A burst that did not finish leaves a terminal still flooding: no echo after it.
        if let (true, Some(_), Some(_)) = (live, bt, bm) {
            let (sa, sb) = echo_both(&mut t, &mut m).await;
            echo_row(&format!("{watchers} watchers, 1 stopped"), &sa, &sb);
        }
        // Clients first: a watcher whose ssh ends under it would report it.
        drop((t, m));
        tmux.end_session(&name);
    }
    if std::env::var("ECHO_CASES").is_err() {
        stalled_impact(&server, &tmux).await;
    }
}

/// A stalled watcher against none, measured interleaved: per system two sessions with a
/// candidate and 10 watchers each; in one of them a watcher stops reading (SIGSTOP) and a
/// 16 MiB burst fills whatever it holds. Then echo batches rotate over the four
/// (tandem clean, tandem stalled, tmux clean, tmux stalled), so the machine's load moves
/// all four alike.
async fn stalled_impact(server: &common::Server, tmux: &Tmux) {
    eprintln!("stalled watcher: connecting");
    let (_clean, clean) = server.session(None).await;
    let (_stalled, stalled) = server.session(None).await;
    let tandem_side = |tokens: &common::Tokens| {
        Side::connect(
            server.ssh(&tokens.candidate, 80, 24),
            (0..10)
                .map(|_| server.ssh(&tokens.observer, 80, 24))
                .collect(),
        )
    };
    let tmux_side = |name: &str| {
        tmux.session(name);
        Side::connect(
            tmux.client(name, false),
            (0..10).map(|_| tmux.client(name, true)).collect(),
        )
    };
    let mut sides = [
        tandem_side(&clean).await,
        tandem_side(&stalled).await,
        tmux_side("clean").await,
        tmux_side("stalled").await,
    ];
    eprintln!("stalled watcher: filling");
    for side in [1, 3] {
        sides[side].watchers[0].stop();
        if sides[side].burst(FILL_BYTES).await.is_none() {
            println!("\n(stalled watcher: the fill did not finish; not measured)");
            return;
        }
    }
    for side in &mut sides {
        side.echo.clear();
    }
    for batch in 0..keys() / BATCH {
        let keys = batch * BATCH..(batch + 1) * BATCH;
        for k in 0..4 {
            sides[(batch + k) % 4].echo(keys.clone()).await;
        }
    }
    println!();
    println!(
        "| a stalled watcher (10 watchers, one stopped after a 16 MiB burst) vs none, interleaved, {} keys each | without | with | change p50 · p99 |",
        sides[0].echo.len()
    );
    println!("|---|---|---|---|");
    for (name, clean, stalled) in [
        ("tandem", &sides[0].echo, &sides[1].echo),
        ("OpenSSH + tmux", &sides[2].echo, &sides[3].echo),
    ] {
        let change = |p: f64| {
            let (a, b) = (percentile(clean, p), percentile(stalled, p));
            (b.as_secs_f64() / a.as_secs_f64() - 1.0) * 100.0
        };
        println!(
            "| {name} | {} · {} | {} · {} | {:+.0} % · {:+.0} % |",
            ms(percentile(clean, 0.5)),
            ms(percentile(clean, 0.99)),
            ms(percentile(stalled, 0.5)),
            ms(percentile(stalled, 0.99)),
            change(0.5),
            change(0.99)
        );
    }
    drop(sides);
    tmux.end_session("clean");
    tmux.end_session("stalled");
}
