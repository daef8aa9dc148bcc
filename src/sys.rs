//! Operating-system details every layer may need. The lowest module: it
//! imports nothing from the crate.

use std::io;

/// An OS error as strerror(3) words it, without Rust's " (os error N)"
/// suffix, so messages read like those of the C tools they stand in for.
pub fn strerror(e: &io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_rust_suffix() {
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(strerror(&e), "No such file or directory");
        assert_eq!(strerror(&io::Error::other("plain")), "plain");
    }
}
