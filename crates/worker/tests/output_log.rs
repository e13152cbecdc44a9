//! Output is kept whole and served to any number of readers, live or late, and capped.

mod common;
use common::*;
use std::hash::Hasher;
use tandem_worker::{JobState, OutputReader};

/// Bytes and a streaming hash of everything a reader returns.
async fn digest(mut reader: OutputReader) -> (u64, u64) {
    let mut hasher = std::hash::DefaultHasher::new();
    let mut len = 0u64;
    while let Some(chunk) = reader.next_chunk().await.expect("read output") {
        assert!(chunk.len() <= tandem_worker::CHUNK);
        hasher.write(&chunk);
        len += chunk.len() as u64;
    }
    (len, hasher.finish())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_readers_get_byte_identical_output() {
    let (manager, _fixture) = manager();
    let shared = tempfile::tempdir().unwrap();
    let written = shared.path().join("written");
    // 50 MiB of random bytes, a copy of exactly what the process wrote kept by tee in a
    // directory bind-mounted from the host.
    let script = "echo go; head -c 52428800 /dev/urandom | tee /shared/written";
    let id = manager
        .start(sh(script).bind(shared.path(), "/shared", false))
        .await
        .unwrap();
    let mut readers = Vec::new();
    for _ in 0..5 {
        readers.push(tokio::spawn(digest(manager.output(id).unwrap())));
    }
    // More readers join while output is streaming.
    read_until(&mut manager.output(id).unwrap(), "go").await;
    for _ in 0..5 {
        readers.push(tokio::spawn(digest(manager.output(id).unwrap())));
    }
    let mut results = Vec::new();
    for r in readers {
        results.push(within(120, "reader", r).await.unwrap());
    }
    assert_eq!(
        manager.wait(id).await.unwrap().state,
        JobState::Exited { code: 0 }
    );

    let mut expected = b"go\n".to_vec();
    expected.extend(std::fs::read(&written).unwrap());
    assert_eq!(expected.len(), 3 + 50 * 1024 * 1024);
    let mut hasher = std::hash::DefaultHasher::new();
    hasher.write(&expected);
    let want = (expected.len() as u64, hasher.finish());
    for (i, got) in results.iter().enumerate() {
        assert_eq!(*got, want, "reader {i} differs");
    }
    // A reader attached after the job ended gets everything and ends.
    assert_eq!(digest(manager.output(id).unwrap()).await, want);
    let status = manager.status(id).unwrap();
    assert_eq!(status.output_bytes, want.0);
    assert_eq!(status.output_dropped_bytes, 0);
}

#[tokio::test]
async fn readers_can_start_at_an_offset() {
    let (manager, _dir) = manager();
    let id = manager.start(sh("printf 0123456789")).await.unwrap();
    manager.wait(id).await.unwrap();
    let tail = manager
        .output_from(id, 4)
        .unwrap()
        .read_to_end()
        .await
        .unwrap();
    assert_eq!(tail, b"456789");
    let past = manager
        .output_from(id, 99)
        .unwrap()
        .read_to_end()
        .await
        .unwrap();
    assert!(past.is_empty());
}

#[tokio::test]
async fn output_beyond_the_cap_is_dropped_with_one_marker() {
    let cap = 1024 * 1024;
    let (manager, _dir) = manager_with(|c| c.output_cap = cap);
    // 3 MiB: the job must not block on its full pipe once the cap is reached.
    let id = manager
        .start(sh("head -c 3145728 /dev/zero; echo done >&2"))
        .await
        .unwrap();
    let status = within(60, "wait", manager.wait(id)).await.unwrap();
    assert_eq!(status.state, JobState::Exited { code: 0 });
    let out = manager.output(id).unwrap().read_to_end().await.unwrap();
    assert!(out[..cap as usize].iter().all(|&b| b == 0));
    let tail = String::from_utf8_lossy(&out[cap as usize..]).into_owned();
    assert_eq!(
        tail,
        format!("\r\n[tandem: output limit of {cap} bytes reached; further output is dropped]\r\n")
    );
    assert_eq!(status.output_bytes, out.len() as u64);
    assert_eq!(status.output_dropped_bytes, 3 * cap + 5 - cap);
}

/// A job may ask for a smaller cap than the manager's (a session's shell does), never a
/// larger one.
#[tokio::test]
async fn a_job_may_keep_less_output_than_the_manager_never_more() {
    let cap = 64 * 1024;
    let (manager, _dir) = manager_with(|c| c.output_cap = cap);
    for (asked, kept) in [(Some(4096), 4096), (Some(cap * 4), cap), (None, cap)] {
        let mut spec = sh("head -c 300000 /dev/zero");
        spec.output_cap = asked;
        let id = manager.start(spec).await.unwrap();
        let status = within(60, "wait", manager.wait(id)).await.unwrap();
        assert_eq!(status.state, JobState::Exited { code: 0 });
        let out = manager.output(id).unwrap().read_to_end().await.unwrap();
        let tail = String::from_utf8_lossy(&out[kept as usize..]).into_owned();
        assert_eq!(
            tail,
            format!(
                "\r\n[tandem: output limit of {kept} bytes reached; further output is dropped]\r\n"
            ),
            "asked for {asked:?}"
        );
        assert_eq!(status.output_dropped_bytes, 300000 - kept);
    }
}
