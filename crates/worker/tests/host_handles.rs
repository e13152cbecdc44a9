//! What the daemon holds never reaches a job: descriptors it inherited without
//! close-on-exec, and host paths it is told to hide even when they lie inside the `/usr`
//! every sandbox sees. (Both found by a red-team run.)

mod common;
use common::*;
use std::os::fd::AsRawFd;
use tandem_worker::{JobSpec, JobState};

#[tokio::test]
async fn a_descriptor_the_daemon_inherited_does_not_reach_a_job() {
    let (manager, _f) = manager();
    // A handle on the host's root without close-on-exec, as a careless parent leaves one.
    let root = std::fs::File::open("/").unwrap();
    // SAFETY: F_DUPFD with a valid descriptor returns a new one, not close-on-exec.
    let leaked = unsafe { libc::fcntl(root.as_raw_fd(), libc::F_DUPFD, 100) };
    assert!(leaked >= 100);
    // On the host, a child process does inherit it.
    let host = std::process::Command::new("sh")
        .args([
            "-c",
            &format!("ls /proc/self/fd/{leaked}/ >/dev/null && echo inherited"),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&host.stdout), "inherited\n");
    let id = manager
        .start(sh("ls /proc/self/fd | tr '\\n' ' '; echo"))
        .await
        .unwrap();
    let text = output_text(&manager, id).await;
    // SAFETY: closing the descriptor this test opened.
    unsafe { libc::close(leaked) };
    assert_eq!(
        manager.wait(id).await.unwrap().state,
        JobState::Exited { code: 0 }
    );
    // stdin, stdout, stderr and ls's own directory handle.
    assert_eq!(text.trim(), "0 1 2 3", "{text}");
}

#[tokio::test]
async fn a_hidden_path_inside_usr_is_hidden_from_jobs_and_checks() {
    let secret_dir = std::path::PathBuf::from(format!(
        "/usr/share/tandem-test-{}",
        tandem_worker::JobId::new_random()
    ));
    std::fs::create_dir(&secret_dir).unwrap();
    std::fs::write(secret_dir.join("solution.sh"), "the answer\n").unwrap();
    let hidden = secret_dir.clone();
    let (manager, _f) = manager_with(|c| c.hide_paths.push(hidden));
    let show = format!(
        "ls -A {0} | wc -l; cat {0}/solution.sh 2>&1 | head -1",
        secret_dir.display()
    );
    let sandbox = manager.start(JobSpec::sandbox()).await.unwrap();
    let mut outputs = Vec::new();
    for pristine in [false, true] {
        let mut spec = sh(&show);
        spec.pristine = pristine;
        let id = manager.exec(sandbox, spec).await.unwrap();
        outputs.push(output_text(&manager, id).await);
    }
    manager
        .stop(sandbox, std::time::Duration::ZERO)
        .await
        .unwrap();
    std::fs::remove_dir_all(&secret_dir).unwrap();
    for text in outputs {
        assert!(text.starts_with("0\n"), "{text}");
        assert!(text.contains("No such file"), "{text}");
    }
}
