//! Who owns the files a task places: users and groups of the sandbox's root filesystem
//! (the system view's own accounts, or a rootfs directory's).

use std::path::Path;
use tandem_limits::accounts;

/// Users and groups of a root filesystem, from its `/etc/passwd` and `/etc/group`.
pub(super) struct Accounts {
    users: Vec<(String, u32, u32)>,
    groups: Vec<(String, u32)>,
}

impl Accounts {
    /// The accounts of a rootfs directory.
    pub(super) fn read(root: &Path) -> Self {
        let read = |f: &str| std::fs::read_to_string(root.join(f)).unwrap_or_default();
        Self {
            users: accounts::users(&read("etc/passwd")),
            groups: accounts::groups(&read("etc/group")),
        }
    }

    /// The system view's accounts (a task without a rootfs).
    pub(super) fn system_view() -> Self {
        Self {
            users: accounts::users(accounts::PASSWD),
            groups: accounts::groups(accounts::GROUP),
        }
    }

    /// `user[:group]`, names from the rootfs or numbers.
    pub(super) fn resolve(&self, owner: &str) -> Result<(u32, u32), String> {
        let (user, group) = match owner.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (owner, None),
        };
        let (uid, primary) = match user.parse::<u32>() {
            Ok(uid) => (uid, uid),
            Err(_) => self
                .users
                .iter()
                .find(|(n, _, _)| n == user)
                .map(|(_, u, g)| (*u, *g))
                .ok_or_else(|| {
                    format!(
                        "no user {user:?} in the root filesystem's /etc/passwd (a user the setup \
                         creates cannot own files placed before setup: chown in the setup script)"
                    )
                })?,
        };
        let gid = match group {
            None => primary,
            Some(g) => match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => self
                    .groups
                    .iter()
                    .find(|(n, _)| n == g)
                    .map(|(_, gid)| *gid)
                    .ok_or_else(|| format!("no group {g:?} in the root filesystem's /etc/group"))?,
            },
        };
        if uid > accounts::MAX_ID || gid > accounts::MAX_ID {
            return Err(format!(
                "{uid}:{gid} is outside the sandbox's ids (0 to {})",
                accounts::MAX_ID
            ));
        }
        Ok((uid, gid))
    }
}
