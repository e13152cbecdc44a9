//! A job with a root filesystem directory of its own (`JobSpec::rootfs`) instead of the
//! system view: the test builds a tiny one (bash, cat and their libraries), as a task
//! author would with mmdebstrap or `docker export`.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use tandem_worker::{JobSpec, JobState};

/// Copies `program` and the shared libraries `ldd` lists into `root` at the same paths.
fn copy_with_libraries(program: &str, root: &Path) {
    let ldd = std::process::Command::new("ldd")
        .arg(program)
        .output()
        .unwrap();
    let mut paths: Vec<PathBuf> = String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(PathBuf::from)
        .collect();
    paths.push(PathBuf::from(program));
    for path in paths {
        let real = std::fs::canonicalize(&path).unwrap();
        for p in [&path, &real] {
            let target = root.join(p.strip_prefix("/").unwrap());
            if target.exists() {
                continue;
            }
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(&real, &target).unwrap();
        }
    }
}

fn tiny_rootfs() -> tempfile::TempDir {
    // Under /var/tmp: on the root file system, which supports idmapped mounts.
    let dir = tempfile::Builder::new()
        .prefix("tandem-rootfs-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let root = dir.path();
    for program in [
        "/usr/bin/bash",
        "/usr/bin/cat",
        "/usr/bin/ls",
        "/usr/bin/cp",
        "/usr/bin/rm",
    ] {
        copy_with_libraries(program, root);
    }
    for d in ["etc", "tmp", "proc", "dev", "sys", "run", "root"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/usr/bin/bash\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    std::fs::write(root.join("etc/marker"), "my own rootfs\n").unwrap();
    dir
}

#[tokio::test]
async fn a_job_runs_on_its_own_root_filesystem_seen_as_root_owned() {
    let (manager, _f) = manager();
    let rootfs = tiny_rootfs();
    let mut spec = JobSpec::new(
        "/usr/bin/bash",
        [
            "-c",
            "cat /etc/marker; ls -ln /usr/bin/bash | { read -r _ _ owner _; echo owner=$owner; }; \
             echo written > /etc/marker && cat /etc/marker; \
             [ -e /usr/bin/python3 ] && echo host-usr || echo no-host-usr",
        ],
    );
    spec.rootfs = Some(rootfs.path().to_path_buf());
    let id = manager.start(spec).await.unwrap();
    let text = output_text(&manager, id).await;
    assert_eq!(
        manager.wait(id).await.unwrap().state,
        JobState::Exited { code: 0 },
        "{text}"
    );
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["my own rootfs", "owner=0", "written", "no-host-usr"]
    );
    // The write stayed in the job's layer.
    assert_eq!(
        std::fs::read_to_string(rootfs.path().join("etc/marker")).unwrap(),
        "my own rootfs\n"
    );
}

#[tokio::test]
async fn a_check_in_a_rootfs_sandbox_runs_the_rootfs_pristine_programs() {
    let (manager, _f) = manager();
    let rootfs = tiny_rootfs();
    let mut sandbox = JobSpec::sandbox();
    sandbox.rootfs = Some(rootfs.path().to_path_buf());
    let sandbox = manager.start(sandbox).await.unwrap();
    let forge = JobSpec::new(
        "/usr/bin/bash",
        [
            "-c",
            "echo state > /etc/state; rm /usr/bin/cat && cp /usr/bin/ls /usr/bin/cat",
        ],
    );
    let id = manager.exec(sandbox, forge).await.unwrap();
    let text = output_text(&manager, id).await;
    assert_eq!(
        manager.wait(id).await.unwrap().state,
        JobState::Exited { code: 0 },
        "{text}"
    );
    // What the candidate runs is the replacement now: `cat` lists instead of printing.
    let plain = JobSpec::new("/usr/bin/bash", ["-c", "cat /etc/state"]);
    let id = manager.exec(sandbox, plain.clone()).await.unwrap();
    assert_eq!(output_text(&manager, id).await, "/etc/state\n");
    let mut check = plain;
    check.pristine = true;
    let id = manager.exec(sandbox, check).await.unwrap();
    let text = output_text(&manager, id).await;
    assert_eq!(
        manager.wait(id).await.unwrap().state,
        JobState::Exited { code: 0 },
        "{text}"
    );
    // The rootfs's own cat, not the candidate's replacement (ls would list, not print).
    assert_eq!(text, "state\n");
    manager
        .stop(sandbox, std::time::Duration::ZERO)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_rootfs_on_overlayfs_is_refused_naming_the_file_system() {
    let (manager, _f) = manager();
    let base = tempfile::Builder::new()
        .prefix("tandem-ovl-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let [lower, upper, work, merged] = ["lower", "upper", "work", "merged"].map(|d| {
        let p = base.path().join(d);
        std::fs::create_dir(&p).unwrap();
        p
    });
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(options.as_str()),
    )
    .unwrap();
    let mut spec = JobSpec::new("/bin/true", [""; 0]);
    spec.rootfs = Some(merged.clone());
    let err = manager.start(spec).await.unwrap_err().to_string();
    nix::mount::umount2(&merged, nix::mount::MntFlags::MNT_DETACH).unwrap();
    assert!(
        err.contains("overlayfs") && err.contains("idmapped"),
        "{err}"
    );
}
