//! `saslpasswd --doctor`: checks of the store and the Postfix SASL setup.

use std::path::Path;

use super::Deployment;
use crate::saslconf::SaslConfig;

/// Run the doctor from the command line; returns the exit code.
pub fn cli(
    prog: &str,
    _store: &Path,
    _config: &SaslConfig,
    _deploy: Option<&Deployment>,
    _fix: bool,
    _json: bool,
) -> i32 {
    crate::cli::stderr(&format!("{prog}: --doctor: not built yet\n"));
    1
}
