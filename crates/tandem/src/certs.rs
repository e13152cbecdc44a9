//! `tandem certs`: making the CA, the server and admin certificates, and client
//! certificates, in a local directory (no server involved). The work is done by
//! `tandem-pki`; this module turns its results into output and next-step hints.

use std::path::{Path, PathBuf};

use tandem_pki::{ApiRole, Validity};

use crate::output::{self, Format};

/// A role on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    /// Sees and manages every job, issues access.
    Admin,
    /// Sees and manages only the jobs they started.
    Interviewer,
}

impl From<RoleArg> for ApiRole {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Admin => ApiRole::Admin,
            RoleArg::Interviewer => ApiRole::Interviewer,
        }
    }
}

/// What a `certs` command wrote, and what to print.
#[derive(Debug)]
pub struct Written {
    /// The files written, in the order `tandem-pki` reports them.
    pub files: Vec<PathBuf>,
    /// What to do next, for people (printed on stderr in text mode).
    pub hint: String,
}

/// `tandem certs init`: a new CA, `server.crt` for `hosts` and `admin.crt` in `dir`.
pub fn init(
    dir: &Path,
    hosts: &[String],
    force: bool,
    validity: Validity,
) -> anyhow::Result<Written> {
    let files = tandem_pki::init(dir, hosts, force, validity)?;
    let dir_arg = quoted(dir);
    let hint = format!(
        "Start tandemd with the server certificate from {dir_arg} (ca.crt, server.crt, \
         server.key), then, as the admin:\n  tandem --certs-dir {dir_arg} job list\n\
         Give others access with: tandem certs issue NAME --role interviewer --dir {dir_arg}"
    );
    Ok(Written { files, hint })
}

/// `tandem certs issue`: a client certificate `NAME.crt`/`NAME.key` signed by the CA in
/// `dir`.
pub fn issue(
    dir: &Path,
    name: &str,
    role: RoleArg,
    force: bool,
    validity: Validity,
) -> anyhow::Result<Written> {
    let files = tandem_pki::issue(dir, name, role.into(), force, validity)?;
    let dir_arg = quoted(dir);
    let name_arg = output::command_line(name, &[]);
    let hint = format!(
        "Give {name_arg}.crt, {name_arg}.key and ca.crt from {dir_arg} to {name_arg}, who then \
         connects with:\n  tandem --certs-dir DIR --user {name_arg} job list"
    );
    Ok(Written { files, hint })
}

/// The standard output of a `certs` command: the files, one a line (text), or a JSON array
/// of their paths.
pub fn render(written: &Written, format: Format) -> anyhow::Result<String> {
    let paths: Vec<String> = written
        .files
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    match format {
        Format::Json => output::json(&paths),
        Format::Text => Ok(paths.iter().map(|p| format!("{p}\n")).collect()),
    }
}

/// A path as it would be typed in a shell.
fn quoted(path: &Path) -> String {
    output::command_line(&path.display().to_string(), &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_text_and_json() {
        let written = Written {
            files: vec![PathBuf::from("certs/a.crt"), PathBuf::from("certs/a.key")],
            hint: String::new(),
        };
        assert_eq!(
            render(&written, Format::Text).unwrap(),
            "certs/a.crt\ncerts/a.key\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(&written, Format::Json).unwrap()).unwrap();
        assert_eq!(json, serde_json::json!(["certs/a.crt", "certs/a.key"]));
    }

    #[test]
    fn init_refuses_to_overwrite_then_issue() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("certs");
        let hosts = ["localhost".to_string()];
        let written = init(&dir, &hosts, false, Validity::default()).unwrap();
        assert_eq!(written.files.len(), 6);
        assert!(written.hint.contains("job list"));
        let err = init(&dir, &hosts, false, Validity::default()).unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        init(&dir, &hosts, true, Validity::default()).unwrap();
        let written = issue(
            &dir,
            "alice",
            RoleArg::Interviewer,
            false,
            Validity::default(),
        )
        .unwrap();
        assert_eq!(
            written.files,
            [dir.join("alice.crt"), dir.join("alice.key")]
        );
        assert!(written.hint.contains("--user alice"));
    }
}
