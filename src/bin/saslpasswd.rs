//! `saslpasswd`: see `sasldb::cli::saslpasswd`.
//!
//! `no_main` keeps the C process start-up: Rust's runtime would reopen a
//! closed stdin as /dev/null (so `saslpasswd <&-` could not report "Bad file
//! descriptor" as saslpasswd2 does) and would ignore SIGPIPE.
// The unit-test build of this target keeps the test harness's own `main`.
#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
use std::ffi::{c_char, c_int};

#[cfg(not(test))]
#[unsafe(no_mangle)]
pub extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    sasldb::cli::saslpasswd::run(std::env::args_os())
}
