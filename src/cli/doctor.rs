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
