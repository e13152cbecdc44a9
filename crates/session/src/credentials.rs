//! Who may log in to a session: one token per role, kept only as SHA-256 digests and
//! compared in constant time, and public keys registered per role (`type base64
//! comment`, bounded and free of control characters, the comment becoming the
//! participant's name).

use crate::{ParticipantRole, SessionId, Tokens};

/// A public key registered for a session, in OpenSSH's `type base64` form.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    /// `ssh-ed25519 AAAA…` (without the comment).
    pub(crate) key: String,
    /// The comment, used as the participant's name.
    pub(crate) name: String,
    /// Who logs in with it.
    pub(crate) role: ParticipantRole,
}

/// Credentials of one live or scheduled session. Tokens are kept only as SHA-256
/// digests (the tokens themselves are given out once, by `create`).
#[derive(Debug)]
pub(crate) struct Credentials {
    pub(crate) session: SessionId,
    pub(crate) digests: Vec<(ParticipantRole, [u8; 32])>,
    pub(crate) keys: Vec<Key>,
}

/// SHA-256 of a token.
pub(crate) fn digest(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0; 32];
    out.copy_from_slice(d.as_ref());
    out
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn unhex(text: &str) -> Option<[u8; 32]> {
    let mut out = [0; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl Credentials {
    pub(crate) fn new(session: SessionId, tokens: &Tokens, keys: Vec<Key>) -> Self {
        Self {
            session,
            digests: tokens
                .all()
                .into_iter()
                .map(|(role, t)| (role, digest(t)))
                .collect(),
            keys,
        }
    }
}

/// Most public keys registered for one role of a session.
pub const MAX_KEYS_PER_ROLE: usize = 32;
/// Longest public key line (`type base64 comment`): an RSA key of 16384 bits is about
/// 2.8 KB of base64.
pub const MAX_KEY_LINE: usize = 8 * 1024;

/// `type base64 [comment]` → the key without its comment, and a name.
pub(crate) fn parse_key(line: &str, role: ParticipantRole) -> Result<Key, String> {
    if line.len() > MAX_KEY_LINE {
        return Err(format!(
            "{} bytes is longer than the {MAX_KEY_LINE} a public key line may have",
            line.len()
        ));
    }
    // The comment becomes the participant's name, shown in interviewers' title bars: no
    // escape sequences, no control characters.
    if let Some(c) = line
        .chars()
        .find(|c| c.is_control() && !matches!(c, ' ' | '\t' | '\n' | '\r'))
    {
        return Err(format!(
            "contains the control character {c:?} (a key line is printable text)"
        ));
    }
    let mut fields = line.split_whitespace();
    let (Some(kind), Some(blob)) = (fields.next(), fields.next()) else {
        return Err("expected an OpenSSH public key: `ssh-ed25519 AAAA… comment`".into());
    };
    if !kind.starts_with("ssh-") && !kind.starts_with("ecdsa-") && !kind.starts_with("sk-") {
        return Err(format!("{kind:?} is not an SSH key type"));
    }
    if blob.len() < 16
        || !blob
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
    {
        return Err("the key data is not base64".into());
    }
    let comment: Vec<&str> = fields.collect();
    Ok(Key {
        key: format!("{kind} {blob}"),
        name: if comment.is_empty() {
            role.to_string()
        } else {
            comment.join(" ")
        },
        role,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `default` cases unless PROPTEST_CASES asks for more (or fewer). (Unit tests: a
    /// failure is reported with its minimal input, not saved to a file.)
    fn cases(default: u32) -> ProptestConfig {
        let mut config = ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        };
        if std::env::var_os("PROPTEST_CASES").is_none() {
            config.cases = default;
        }
        config
    }

    const KINDS: &[&str] = &[
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "sk-ssh-ed25519@openssh.com",
    ];

    proptest! {
        #![proptest_config(cases(2_000))]

        /// Whatever the line: an answer, never a panic; a key only of a known type with
        /// base64 data, bounded, and a name without control characters.
        #[test]
        fn any_line_is_answered(line in prop_oneof!["\\PC{0,200}", any::<String>(), "(ssh-|ecdsa-|sk-)[ -~]{0,100}"]) {
            if let Ok(key) = parse_key(&line, ParticipantRole::Interviewer) {
                prop_assert!(line.len() <= MAX_KEY_LINE);
                let (kind, blob) = key.key.split_once(' ').unwrap();
                prop_assert!(kind.starts_with("ssh-") || kind.starts_with("ecdsa-") || kind.starts_with("sk-"));
                prop_assert!(blob.len() >= 16 && blob.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)));
                prop_assert!(!key.name.is_empty() && !key.name.chars().any(char::is_control));
            }
        }

        /// A well-formed line gives back its key and its comment (words joined by one
        /// space), or the role as the name without a comment.
        #[test]
        fn well_formed_lines_round_trip(
            kind in 0..KINDS.len(),
            blob in "[A-Za-z0-9+/]{16,600}={0,2}",
            comment in prop::collection::vec("[!-~]{1,12}", 0..4),
            spaces in " {1,3}|\t",
        ) {
            let line = format!("{}{spaces}{blob}{spaces}{}", KINDS[kind], comment.join(&spaces));
            let key = parse_key(&line, ParticipantRole::Candidate).unwrap();
            prop_assert_eq!(key.key, format!("{} {blob}", KINDS[kind]));
            let name = if comment.is_empty() { "candidate".to_string() } else { comment.join(" ") };
            prop_assert_eq!(key.name, name);
            prop_assert_eq!(key.role, ParticipantRole::Candidate);
        }

        /// An escape sequence or other control character anywhere is refused.
        #[test]
        fn control_characters_are_refused(
            blob in "[A-Za-z0-9+/]{16,64}",
            control in prop::sample::select(vec!['\x1b', '\x07', '\0', '\x7f', '\u{9b}', '\x08']),
            at in 0..3usize,
        ) {
            let mut parts = ["ssh-ed25519".to_string(), blob, "ivy@laptop".to_string()];
            parts[at].push(control);
            let err = parse_key(&parts.join(" "), ParticipantRole::Interviewer).unwrap_err();
            prop_assert!(err.contains("control character"), "{}", err);
        }
    }

    #[test]
    fn long_lines_are_refused() {
        let line = format!("ssh-ed25519 {}", "A".repeat(MAX_KEY_LINE));
        let err = parse_key(&line, ParticipantRole::Interviewer).unwrap_err();
        assert!(err.contains("longer than"), "{err}");
        let ok = format!("ssh-rsa {} me", "A".repeat(2800));
        assert!(parse_key(&ok, ParticipantRole::Interviewer).is_ok());
    }
}
