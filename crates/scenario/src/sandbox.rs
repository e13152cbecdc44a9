//! A task's sandbox values (plain types of `tandem-task`, which does not know the worker)
//! as the worker's job spec types. Functions rather than `From` impls: both sides are
//! types of other crates, which Rust's orphan rule does not let this crate connect.

use tandem_task::{TaskFile, TaskTmpfs};
use tandem_worker::{FileSpec, TmpfsMount};

/// A task's file as the worker's (owners are always resolved to numbers).
pub fn file(f: &TaskFile) -> FileSpec {
    FileSpec {
        path: f.path.clone(),
        content: f.content.clone(),
        mode: f.mode,
        uid: Some(f.uid),
        gid: Some(f.gid),
    }
}

/// A task's tmpfs mount as the worker's.
pub fn tmpfs(t: &TaskTmpfs) -> TmpfsMount {
    TmpfsMount {
        target: t.target.clone(),
        size: t.size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_mounts_keep_every_field() {
        let f = TaskFile {
            path: "/etc/motd".into(),
            content: b"hi".to_vec(),
            mode: 0o640,
            uid: 65534,
            gid: 4,
        };
        assert_eq!(
            file(&f),
            FileSpec {
                path: "/etc/motd".into(),
                content: b"hi".to_vec(),
                mode: 0o640,
                uid: Some(65534),
                gid: Some(4),
            }
        );
        let t = TaskTmpfs {
            target: "/data".into(),
            size: 10 << 20,
        };
        assert_eq!(
            tmpfs(&t),
            TmpfsMount {
                target: "/data".into(),
                size: 10 << 20
            }
        );
    }
}
