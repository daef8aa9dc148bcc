//! `sasldblistusers`: see `sasldb::cli::listusers`.
//!
//! `no_main` keeps the C process start-up (SIGPIPE ends the process quietly
//! when the reader of `sasldblistusers | head` goes away, as with Cyrus).
// The unit-test build of this target keeps the test harness's own `main`.
#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
use std::ffi::{c_char, c_int};

#[cfg(not(test))]
#[unsafe(no_mangle)]
pub extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    sasldb::cli::listusers::run(std::env::args_os())
}
