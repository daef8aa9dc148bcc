//! Integration tests of the command-line tools (`saslpasswd`, `sasldblistusers`, the
//! doctor, the Postfix publication), one test binary. Run by tests/common/harness.rs: a test
//! whose system tool is missing is counted as ignored, or fails under CI=true.

#[path = "../common/mod.rs"]
mod common;

mod compat;
mod doctor;
mod generated;
mod interop;
mod migrate;
mod pg;
mod pg_doctor;
mod pg_import;
mod pg_tls;
mod postfix;
mod progress;
mod prompt;
mod robustness;
mod robustness_concurrency;
mod robustness_crash;
mod saslpasswd_empty;
mod smoke;

fn main() {
    common::harness::run(
        [
            compat::tests(),
            doctor::tests(),
            generated::tests(),
            interop::tests(),
            migrate::tests(),
            pg::tests(),
            pg_doctor::tests(),
            pg_import::tests(),
            pg_tls::tests(),
            postfix::tests(),
            progress::tests(),
            prompt::tests(),
            robustness::tests(),
            robustness_concurrency::tests(),
            robustness_crash::tests(),
            saslpasswd_empty::tests(),
            smoke::tests(),
        ]
        .into_iter()
        .flatten()
        .collect(),
    )
}
