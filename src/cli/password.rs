//! Reading a password exactly as `saslpasswd2` does.
//!
//! Pipe mode: one `read(2)` of at most 2048 bytes, exactly one trailing LF
//! removed (CR and inner LFs kept), the value cut at the first NUL (libsasl
//! stores a C string). A pipe that delivers the password in pieces stores
//! only the first piece, as with Cyrus.
//!
//! Terminal mode: `Password: ` (and `Again (for verification): `) on stdout,
//! echo off but the typed newline echoed (ECHONL), a newline printed when the
//! line did not end in one (Ctrl-D). The terminal is restored even when the
//! user interrupts the prompt.

use std::io::{self, Write};
use std::os::fd::RawFd;
use std::sync::OnceLock;

/// Cyrus reads the password with one `read()` into a buffer of this size.
pub const PIPE_MAX: usize = 2048;

fn read_once(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: buf is a valid writable buffer of buf.len() bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Trim one trailing LF, then cut at the first NUL.
fn finish(mut bytes: Vec<u8>) -> (Vec<u8>, bool) {
    let had_newline = bytes.last() == Some(&b'\n');
    if had_newline {
        bytes.pop();
    }
    if let Some(nul) = bytes.iter().position(|&b| b == 0) {
        bytes.truncate(nul);
    }
    (bytes, had_newline)
}

/// Pipe mode: one read of at most [`PIPE_MAX`] bytes from `fd`.
pub fn read_pipe(fd: RawFd) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; PIPE_MAX];
    let n = read_once(fd, &mut buf)?;
    buf.truncate(n);
    Ok(finish(buf).0)
}

/// The terminal settings to put back if a signal ends the prompt.
static SAVED: OnceLock<(RawFd, libc::termios)> = OnceLock::new();

extern "C" fn restore_and_reraise(sig: libc::c_int) {
    if let Some((fd, t)) = SAVED.get() {
        // SAFETY: tcsetattr, signal and raise are async-signal-safe.
        unsafe {
            libc::tcsetattr(*fd, libc::TCSANOW, t);
        }
    }
    // SAFETY: as above; the default action then ends the process.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// Echo switched off on a terminal for as long as this lives.
struct NoEcho {
    fd: RawFd,
    saved: libc::termios,
}

impl NoEcho {
    fn new(fd: RawFd) -> io::Result<NoEcho> {
        // SAFETY: termios is plain data; tcgetattr fills it.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let _ = SAVED.set((fd, saved));
        let handler = restore_and_reraise as extern "C" fn(libc::c_int) as libc::sighandler_t;
        for sig in [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGQUIT,
            libc::SIGHUP,
            libc::SIGTSTP,
        ] {
            // SAFETY: installing a handler that only calls async-signal-safe
            // functions; a signal the caller ignores stays ignored.
            unsafe {
                if libc::signal(sig, handler) == libc::SIG_IGN {
                    libc::signal(sig, libc::SIG_IGN);
                }
            }
        }
        let mut t = saved;
        t.c_lflag &= !(libc::ECHO
            | libc::ECHOE
            | libc::ECHOK
            | libc::ECHOCTL
            | libc::ECHOPRT
            | libc::ECHOKE);
        t.c_lflag |= libc::ICANON | libc::ECHONL;
        // SAFETY: t is a valid termios derived from the current one.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(NoEcho { fd, saved })
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        // SAFETY: restoring the settings read in new().
        unsafe {
            libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved);
        }
    }
}

/// Prompt on stdout and read one line from the terminal at `fd`, echo off.
pub fn prompt(fd: RawFd, text: &str) -> io::Result<Vec<u8>> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    let line = {
        let _guard = NoEcho::new(fd)?;
        let mut buf = vec![0u8; PIPE_MAX];
        let n = read_once(fd, &mut buf)?;
        buf.truncate(n);
        buf
    };
    let (pw, had_newline) = finish(line);
    if !had_newline {
        out.write_all(b"\n")?;
        out.flush()?;
    }
    Ok(pw)
}

#[cfg(test)]
mod tests {
    use super::finish;

    #[test]
    fn exactly_one_newline_is_removed_and_nul_truncates() {
        for (input, want) in [
            (&b"abc"[..], &b"abc"[..]),
            (b"abc\n", b"abc"),
            (b"abc\n\n", b"abc\n"),
            (b"abc\r\n", b"abc\r"),
            (b"line1\nline2\n", b"line1\nline2"),
            (b"  sp  \n", b"  sp  "),
            (b"ab\0cd\n", b"ab"),
            (b"\n", b""),
            (b"", b""),
        ] {
            assert_eq!(finish(input.to_vec()).0, want, "{input:?}");
        }
    }
}
