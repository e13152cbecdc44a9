//! `tandem certs …`: making the CA, the server and admin certificates, and client
//! certificates, in a local directory (no server involved). The work is done by
//! `tandem-pki`; this module has the clap model, turns the results into output and
//! next-step hints, and runs the commands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use tandem_pki::{ApiRole, Validity};

use crate::Global;
use crate::render::{self, Format, print};

/// `tandem certs …`.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Make a new CA, the server certificate and the admin client certificate
    #[command(long_about = "Make a new CA (ca.crt, ca.key), the server certificate \
        (server.crt, server.key) for the given host names and addresses, and the first \
        client certificate (admin.crt, admin.key). Existing files are kept unless --force \
        is given; with --force, certificates issued by the old CA stop working.")]
    Init {
        /// Directory to write to [default: the --certs-dir directory]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Host names and IP addresses the server certificate is valid for
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "localhost,127.0.0.1",
            value_name = "HOST,..."
        )]
        hosts: Vec<String>,
        /// Replace existing files
        #[arg(long)]
        force: bool,
        /// Days the CA certificate is valid
        #[arg(long, default_value_t = tandem_pki::Validity::default().ca_days, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
        ca_days: u32,
        /// Days the server and admin certificates are valid
        #[arg(long, default_value_t = tandem_pki::Validity::default().leaf_days, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
        days: u32,
    },
    /// Issue a client certificate NAME.crt / NAME.key signed by the CA
    Issue {
        /// The user name (the certificate's CN): A-Z a-z 0-9 . _ -
        name: String,
        /// What the user may do
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Directory with the CA [default: the --certs-dir directory]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Replace existing files
        #[arg(long)]
        force: bool,
        /// Days the certificate is valid (never beyond the CA's expiry)
        #[arg(long, default_value_t = tandem_pki::Validity::default().leaf_days, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
        days: u32,
    },
}

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
    let name_arg = render::command_line(name, &[]);
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
        Format::Json => render::json(&paths),
        Format::Text => Ok(paths.iter().map(|p| format!("{p}\n")).collect()),
    }
}

/// A path as it would be typed in a shell.
fn quoted(path: &Path) -> String {
    render::command_line(&path.display().to_string(), &[])
}

/// `tandem certs …`.
pub fn run(global: &Global, command: CertsCommand) -> anyhow::Result<ExitCode> {
    let written = match command {
        CertsCommand::Init {
            dir,
            hosts,
            force,
            ca_days,
            days,
        } => {
            let validity = tandem_pki::Validity {
                ca_days,
                leaf_days: days,
            };
            let dir = dir.unwrap_or_else(|| global.certs_dir.clone());
            init(&dir, &hosts, force, validity)?
        }
        CertsCommand::Issue {
            name,
            role,
            dir,
            force,
            days,
        } => {
            let validity = tandem_pki::Validity {
                leaf_days: days,
                ..tandem_pki::Validity::default()
            };
            let dir = dir.unwrap_or_else(|| global.certs_dir.clone());
            issue(&dir, &name, role, force, validity)?
        }
    };
    print(&render(&written, global.output)?)?;
    if global.output == Format::Text {
        eprintln!("{}", written.hint);
    }
    Ok(ExitCode::SUCCESS)
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
