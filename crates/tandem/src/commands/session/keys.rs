//! The public key files of `tandem session create --candidate-key/--interviewer-key`:
//! OpenSSH public keys, one a line, read before connecting so that a bad file is reported
//! first, with the flag and the line.

use std::path::Path;

use anyhow::bail;

/// The OpenSSH public keys in a key file: its non-empty lines that are not `#` comments.
/// `flag` (e.g. `--candidate-key`) and the file name are in every error.
pub(super) fn read_keys(flag: &str, path: &Path) -> anyhow::Result<Vec<String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => bail!("{flag} {}: cannot read it: {e}", path.display()),
    };
    keys_in(flag, path, &text)
}

/// The keys in `text`, the contents of `path` (see [`read_keys`]).
fn keys_in(flag: &str, path: &Path, text: &str) -> anyhow::Result<Vec<String>> {
    let file = path.display();
    if text.contains("PRIVATE KEY-----") {
        bail!("{flag} {file}: this is a private key; give the public key (the .pub file)");
    }
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.split_whitespace().count() < 2 {
            bail!(
                "{flag} {file}:{}: not an OpenSSH public key (expected `ssh-ed25519 AAAA… comment`)",
                n + 1
            );
        }
        keys.push(line.to_string());
    }
    if keys.is_empty() {
        bail!("{flag} {file}: the file holds no public key");
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files() {
        let path = Path::new("alice.pub");
        let keys = keys_in(
            "--candidate-key",
            path,
            "# mine\nssh-ed25519 AAAAC3Nza alice@laptop\n\n  ssh-rsa AAAAB3Nza  \n",
        )
        .unwrap();
        assert_eq!(
            keys,
            ["ssh-ed25519 AAAAC3Nza alice@laptop", "ssh-rsa AAAAB3Nza"]
        );
        let err = keys_in("--candidate-key", path, "\n# none\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "--candidate-key alice.pub: the file holds no public key"
        );
        let err = keys_in("--interviewer-key", path, "ssh-ed25519 AAAA\nnope\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--interviewer-key alice.pub:2: ")
        );
        let err = keys_in(
            "--candidate-key",
            path,
            "-----BEGIN OPENSSH PRIVATE KEY-----\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("private key"));
        let err = read_keys("--candidate-key", Path::new("/nonexistent/k.pub")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--candidate-key /nonexistent/k.pub: cannot read it:")
        );
    }
}
