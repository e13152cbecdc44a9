//! Keystroke echo latency through the whole path (OpenSSH client → tandem SSH → PTY in the
//! sandbox → echo by the shell → fan-out → back), with 1 and 10 connected clients. Run
//! as root: `bench/ssh.sh`. Prints Markdown table rows.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn measure(clients: usize, samples: usize) -> (Duration, Duration) {
    let server = common::Server::start().await;
    let (_session, tokens) = server.session(None).await;
    let mut cand = server.ssh(&tokens.candidate, 80, 24);
    cand.expect("demo$ ").await;
    let mut viewers = Vec::new();
    for _ in 1..clients {
        let mut v = server.ssh(&tokens.observer, 80, 24);
        v.expect("demo$ ").await;
        viewers.push(v);
    }
    // Viewers keep reading in the background, like people watching.
    let readers: Vec<_> = viewers
        .into_iter()
        .map(|mut v| {
            tokio::spawn(async move {
                let _ = v.until_exit().await;
            })
        })
        .collect();
    let mut times = Vec::new();
    for i in 0..samples {
        // A marker no escape sequence contains, typed at the prompt and echoed back;
        // then Enter, and the next prompt, before the next sample.
        let key = format!("x{i}y");
        cand.clear();
        let t = Instant::now();
        cand.send(&key);
        cand.expect(&key).await;
        times.push(t.elapsed());
        cand.clear();
        cand.send("\r");
        cand.expect("demo$ ").await;
    }
    for r in readers {
        r.abort();
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    for clients in [1, 10] {
        let (p50, p99) = measure(clients, 300).await;
        println!(
            "| keystroke echo over ssh, {clients} connected client(s), 300 keys | p50 {:.2} ms · p99 {:.2} ms |",
            p50.as_secs_f64() * 1000.0,
            p99.as_secs_f64() * 1000.0
        );
    }
}
