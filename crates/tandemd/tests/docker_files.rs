//! docker/Dockerfile and compose.yaml agree with the repository: fast checks that catch
//! drift. The image is built and an interview run through the container by
//! ci/compose-smoke.sh (in `.ci/run`, which has a Docker engine).

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn dockerfile_installs_what_tasks_use_and_copies_existing_paths() {
    let dockerfile = read("docker/Dockerfile");
    let install = dockerfile
        .split("apt-get install")
        .nth(1)
        .expect("an apt-get install line")
        .split("&&")
        .next()
        .unwrap();
    let packages: Vec<&str> = install
        .split_whitespace()
        .filter(|w| !w.starts_with('-') && *w != "\\")
        .collect();
    // The tools the shipped tasks and the README rely on.
    for needed in [
        "bash",
        "procps",
        "iproute2",
        "python3",
        "curl",
        "strace",
        "lsof",
        "less",
        "vim-tiny",
        "util-linux",
        "passwd",
        "findutils",
    ] {
        assert!(
            packages.contains(&needed),
            "Dockerfile does not install {needed}: {packages:?}"
        );
    }
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        for source in &words[1..words.len() - 1] {
            if *source != "." {
                assert!(
                    repo().join(source).exists(),
                    "COPY source {source} does not exist"
                );
            }
        }
    }
    for bin in ["tandemd", "tandem"] {
        assert!(
            dockerfile.contains(&format!("-p {bin}")),
            "the image does not build {bin}"
        );
        assert!(repo().join("crates").join(bin).join("Cargo.toml").exists());
    }
    // The runtime stage comes first (the classic builder runs every stage above the
    // target) and docker/prebuilt.Dockerfile adds host-built binaries to it.
    let first_from = dockerfile.lines().find(|l| l.starts_with("FROM ")).unwrap();
    assert_eq!(first_from, "FROM ${BASE_IMAGE} AS runtime");
    let prebuilt = read("docker/prebuilt.Dockerfile");
    assert!(
        prebuilt.contains("ARG BINARIES=target/release")
            && prebuilt.contains("COPY ${BINARIES}/tandemd ${BINARIES}/tandem /usr/local/bin/"),
        "the prebuilt image takes release binaries by default"
    );
    let ignore = read(".dockerignore");
    for bin in ["tandemd", "tandem"] {
        for profile in ["release", "debug"] {
            assert!(
                ignore.contains(&format!("!target/{profile}/{bin}\n")),
                ".dockerignore hides target/{profile}/{bin} from the prebuilt image"
            );
        }
    }
    let toolchain = read("Cargo.toml");
    assert!(
        toolchain.contains("rust-version = \"1.95\"") && dockerfile.contains("rust:1.95"),
        "the build image must match the workspace's rust-version"
    );
    assert!(Path::new(&repo().join("docker/entrypoint.sh")).exists());
}

#[test]
fn compose_runs_one_privileged_tandemd_with_health_and_volumes() {
    let compose = read("compose.yaml");
    for needed in [
        "privileged: true",
        "\"2222:2222\"",
        ":50051:50051\"",
        "dockerfile: docker/Dockerfile",
        "/var/lib/tandem",
        "./tasks:/srv/tandem/tasks:ro",
        "./certs:/etc/tandem/certs",
        "\"health\"]",
    ] {
        assert!(compose.contains(needed), "compose.yaml lacks {needed:?}");
    }
    // Where privileged is refused: the same service without it, with what tandemd needs.
    let unprivileged = read("compose.noprivileged.yaml");
    for needed in [
        "privileged: false",
        "- ALL",
        "seccomp=unconfined",
        "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    ] {
        assert!(
            unprivileged.contains(needed),
            "compose.noprivileged.yaml lacks {needed:?}"
        );
    }
    // The environment it sets are real tandemd settings.
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_tandemd"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for var in [
        "TANDEM_CERT_HOSTS",
        "TANDEM_SSH_ADDRESS",
        "TANDEM_STATE_DIR",
        "TANDEM_TASKS_DIR",
    ] {
        assert!(help.contains(var), "tandemd --help does not know {var}");
    }
    let dockerfile = read("docker/Dockerfile");
    for var in [
        "TANDEM_STATE_DIR",
        "TANDEM_CERTS_DIR",
        "TANDEM_TASKS_DIR",
        "TANDEM_GRPC_LISTEN",
        "TANDEM_SSH_LISTEN",
    ] {
        assert!(dockerfile.contains(var), "Dockerfile does not set {var}");
        assert!(help.contains(var), "tandemd --help does not know {var}");
    }
}
