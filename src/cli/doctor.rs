//! `saslpasswd --doctor [--fix] [--json]` on the command line: run the
//! library's doctor, print its report, and turn it into an exit status.

use std::io::{self, Write};
use std::path::Path;

use crate::postfix::Deployment;
use crate::postfix::doctor;
use crate::saslconf::SaslConfig;
use crate::store::OpenOptions;

/// The report could not be rendered.
#[derive(Debug, thiserror::Error)]
#[error("--doctor: {0}")]
pub struct DoctorError(#[from] serde_json::Error);

/// `--doctor -f postgresql://...`: the database's findings, then the Cyrus
/// lines for it (text), or both in one JSON object (`cyrus_lines`); true
/// when no error was found.
pub fn run_pg(prog: &str, url: &str, json: bool) -> Result<bool, DoctorError> {
    let facts = doctor::pg::gather(url);
    let mut report = doctor::Report::new(Path::new(&facts.target), doctor::pg::check(&facts));
    let lines = facts.site.as_ref().ok().map(doctor::pg::cyrus_lines);
    let text = if json {
        report.cyrus_lines = lines;
        report.json()?
    } else {
        let mut text = report.text(prog);
        if let Some(lines) = lines {
            text.push_str(
                "Cyrus SASL lines for Postfix's smtpd.conf (libsasl2-modules-sql) reading this database\n\
                 (sql_passwd: the role's password; %r is smtpd_sasl_local_domain, else the part after @, else myhostname):\n",
            );
            for l in lines {
                text.push_str(&format!("  {l}\n"));
            }
        }
        text
    };
    let _ = io::stdout().write_all(text.as_bytes());
    Ok(report.errors == 0)
}

/// Print the report (text, or JSON with `json`); true when no error
/// remains (warnings allowed).
pub fn run(
    prog: &str,
    store: &Path,
    config: &SaslConfig,
    deploy: Option<&Deployment>,
    fix: bool,
    json: bool,
) -> Result<bool, DoctorError> {
    let opts = OpenOptions {
        map_size: config.sasldb_mapsize(),
        max_readers: config.sasldb_maxreaders(),
    };
    let report = doctor::diagnose(store, &opts, deploy, fix);
    let text = if json {
        report.json()?
    } else {
        report.text(prog)
    };
    let _ = io::stdout().write_all(text.as_bytes());
    Ok(report.errors == 0)
}
