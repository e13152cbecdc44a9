//! Which Linux capabilities a sandbox keeps: a small default set, and an allow-list of
//! capabilities a task may add. Every capability holds only inside the sandbox's own user
//! namespace; these sets decide how much of the kernel a candidate can reach from there.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Capability numbers and names (linux/capability.h) this module knows.
const NAMES: &[(u8, &str)] = &[
    (0, "CHOWN"),
    (1, "DAC_OVERRIDE"),
    (2, "DAC_READ_SEARCH"),
    (3, "FOWNER"),
    (4, "FSETID"),
    (5, "KILL"),
    (6, "SETGID"),
    (7, "SETUID"),
    (8, "SETPCAP"),
    (9, "LINUX_IMMUTABLE"),
    (10, "NET_BIND_SERVICE"),
    (11, "NET_BROADCAST"),
    (12, "NET_ADMIN"),
    (13, "NET_RAW"),
    (14, "IPC_LOCK"),
    (15, "IPC_OWNER"),
    (16, "SYS_MODULE"),
    (17, "SYS_RAWIO"),
    (18, "SYS_CHROOT"),
    (19, "SYS_PTRACE"),
    (20, "SYS_PACCT"),
    (21, "SYS_ADMIN"),
    (22, "SYS_BOOT"),
    (23, "SYS_NICE"),
    (24, "SYS_RESOURCE"),
    (25, "SYS_TIME"),
    (26, "SYS_TTY_CONFIG"),
    (27, "MKNOD"),
    (28, "LEASE"),
    (29, "AUDIT_WRITE"),
    (30, "AUDIT_CONTROL"),
    (31, "SETFCAP"),
    (32, "MAC_OVERRIDE"),
    (33, "MAC_ADMIN"),
    (34, "SYSLOG"),
    (35, "WAKE_ALARM"),
    (36, "BLOCK_SUSPEND"),
    (37, "AUDIT_READ"),
    (38, "PERFMON"),
    (39, "BPF"),
    (40, "CHECKPOINT_RESTORE"),
];

/// What every sandbox keeps: Docker's default set without `MKNOD` (no device nodes) and
/// without `NET_RAW` (raw and packet sockets are kernel surface an interview rarely needs).
pub const DEFAULT: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "AUDIT_WRITE",
    "SETFCAP",
];

/// What a task may add (`capabilities:` in task.yaml, `--cap` on `tandem job start`).
/// `NET_ADMIN` and `NET_RAW` open nf_tables, tc, xfrm and packet sockets: the kernel
/// surface most recent container escapes went through, so they are opt-in, per task.
/// Everything else (`SYS_ADMIN`, `SYS_MODULE`, `MKNOD`, `BPF`, …) is never granted.
pub const ALLOWED_EXTRA: &[&str] = &[
    "NET_ADMIN",
    "NET_RAW",
    "SYS_PTRACE",
    "SYS_NICE",
    "SYS_RESOURCE",
    "IPC_LOCK",
    "DAC_READ_SEARCH",
    "LEASE",
];

/// A set of capabilities, as the kernel's bit mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CapSet(pub u64);

impl CapSet {
    /// The default set.
    pub fn default_set() -> Self {
        let mut set = Self(0);
        for name in DEFAULT {
            if let Some(bit) = number(name) {
                set.0 |= 1 << bit;
            }
        }
        set
    }

    /// The default set plus `extra` (names with or without `CAP_`, any case), each checked
    /// against [`ALLOWED_EXTRA`]. The error names the capability and what is allowed.
    pub fn with_extra<S: AsRef<str>>(extra: &[S]) -> Result<Self, String> {
        let mut set = Self::default_set();
        for (i, raw) in extra.iter().enumerate() {
            let name = normalize(raw.as_ref());
            let Some(bit) = number(&name) else {
                return Err(format!(
                    "capabilities[{i}]: {:?} is not a Linux capability",
                    raw.as_ref()
                ));
            };
            if !DEFAULT.contains(&name.as_str()) && !ALLOWED_EXTRA.contains(&name.as_str()) {
                return Err(format!(
                    "capabilities[{i}]: {name} is never granted to a sandbox (allowed: {})",
                    ALLOWED_EXTRA.join(", ")
                ));
            }
            set.0 |= 1 << bit;
        }
        Ok(set)
    }

    /// This set plus one capability by name (unknown names add nothing).
    pub fn plus(self, name: &str) -> Self {
        match number(name) {
            Some(bit) => Self(self.0 | 1 << bit),
            None => self,
        }
    }

    /// True when the capability `name` is in the set.
    pub fn contains(self, name: &str) -> bool {
        number(&normalize(name)).is_some_and(|bit| self.0 & (1 << bit) != 0)
    }

    /// The names in the set, lowest number first.
    pub fn names(self) -> Vec<&'static str> {
        NAMES
            .iter()
            .filter(|(bit, _)| self.0 & (1 << bit) != 0)
            .map(|(_, name)| *name)
            .collect()
    }
}

impl fmt::Display for CapSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

fn normalize(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    upper.strip_prefix("CAP_").unwrap_or(&upper).to_string()
}

fn number(name: &str) -> Option<u8> {
    NAMES.iter().find(|(_, n)| *n == name).map(|(bit, _)| *bit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_set_lacks_the_dangerous_ones() {
        let set = CapSet::default_set();
        for name in [
            "SYS_ADMIN",
            "NET_ADMIN",
            "NET_RAW",
            "SYS_PTRACE",
            "MKNOD",
            "SYS_MODULE",
        ] {
            assert!(!set.contains(name), "{name} is in the default set");
        }
        assert!(set.contains("CHOWN") && set.contains("cap_setuid"));
        assert_eq!(set.names().len(), DEFAULT.len());
    }

    #[test]
    fn extras_are_checked_against_the_allow_list() {
        let set = CapSet::with_extra(&["net_admin", "CAP_SYS_PTRACE"]).unwrap();
        assert!(set.contains("NET_ADMIN") && set.contains("SYS_PTRACE"));
        let err = CapSet::with_extra(&["NET_ADMIN", "SYS_ADMIN"]).unwrap_err();
        assert!(
            err.starts_with("capabilities[1]: SYS_ADMIN is never granted"),
            "{err}"
        );
        let err = CapSet::with_extra(&["FLY"]).unwrap_err();
        assert!(err.contains("not a Linux capability"), "{err}");
    }
}
