//! How a run of `saslpasswd` fails: one typed [`Failure`], printed in one
//! place in saslpasswd2's words and with its exit status.

use super::command::usage;
use crate::admin::AdminError;
use crate::cli::batch::LineError;
use crate::cli::doctor::DoctorError;
use crate::cli::{exit, stderr};
use crate::postfix::DeployError;
use crate::saslconf::ConfigError;
use crate::secret::SecretError;
use crate::store::StoreError;

/// Why a run fails. Each is printed once, by [`Failure::report`], in
/// saslpasswd2's words and with its exit status.
#[derive(Debug, thiserror::Error)]
pub(super) enum Failure {
    /// A bad option, `-h`, or the wrong number of operands: the usage text.
    #[error("usage")]
    Usage,
    /// Printed without the program name, as saslpasswd2 does.
    #[error("appname must not contain /")]
    Appname,
    #[error(transparent)]
    Config(ConfigError),
    #[error("auxprop_plugin ({0}) names no sasldb store")]
    NoSasldb(String),
    #[error("Postfix integration: {0}")]
    Integration(DeployError),
    /// Preparing or writing the change failed: the detail, then Cyrus's
    /// "generic failure".
    #[error(transparent)]
    Generic(AdminError),
    #[error("invalid parameter supplied")]
    EmptyPassword,
    #[error("passwords don't match; aborting")]
    Mismatch,
    #[error("generic failure: gethostname")]
    Hostname,
    #[error("the change is saved, but Postfix's copy or modes are not: {0}")]
    NotDeployed(DeployError),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Deploy(DeployError),
    #[error(transparent)]
    Doctor(#[from] DoctorError),
    /// The doctor's report, already printed, names the errors.
    #[error("errors remain")]
    Unhealthy,
    #[error("batch: {} bad line(s); nothing written", .0.len())]
    Batch(Vec<LineError>),
    /// Anything else: one line after the program name.
    #[error("{0}")]
    Said(String),
}

impl From<AdminError> for Failure {
    fn from(e: AdminError) -> Failure {
        match e {
            AdminError::Secret(SecretError::Empty) => Failure::EmptyPassword,
            e => Failure::Generic(e),
        }
    }
}

impl Failure {
    /// Print the failure and return the exit status.
    pub(super) fn report(&self, prog: &str) -> i32 {
        let say = |text: &str| stderr(&format!("{prog}: {text}\n"));
        match self {
            Failure::Usage => {
                stderr(&usage(prog));
                exit::FAIL
            }
            Failure::Appname => {
                stderr(&format!("{self}\n"));
                exit::FAIL
            }
            Failure::Config(e) => {
                say(&e.to_string());
                say("error when parsing configuration file");
                exit::CONFIGERR
            }
            Failure::NoSasldb(_) => {
                say(&self.to_string());
                say("no mechanism available");
                exit::NOMECH
            }
            Failure::Generic(e) => {
                say(&e.to_string());
                say("generic failure");
                exit::FAIL
            }
            Failure::EmptyPassword | Failure::Mismatch => {
                say(&self.to_string());
                exit::BADPARAM
            }
            Failure::Unhealthy => exit::FAIL,
            Failure::Batch(errors) => {
                const SHOWN: usize = 20;
                for e in errors.iter().take(SHOWN) {
                    say(&format!("batch line {}: {}", e.line, e.reason));
                }
                if errors.len() > SHOWN {
                    say(&format!("... and {} more bad lines", errors.len() - SHOWN));
                }
                say(&self.to_string());
                exit::FAIL
            }
            _ => {
                say(&self.to_string());
                exit::FAIL
            }
        }
    }
}
