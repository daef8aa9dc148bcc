//! `saslpasswd`: see `sasldb::cli::saslpasswd`.
//!
//! `no_main` keeps the C process start-up: Rust's runtime would reopen a
//! closed stdin as /dev/null (so `saslpasswd <&-` could not report "Bad file
//! descriptor" as saslpasswd2 does) and would ignore SIGPIPE.
#![no_main]

use std::ffi::{c_char, c_int};

#[unsafe(no_mangle)]
pub extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    sasldb::cli::saslpasswd::run(std::env::args_os())
}
