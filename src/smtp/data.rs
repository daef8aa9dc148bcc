//! The DATA receiver as a sans-I/O state machine: fed the bytes the client
//! sends after `354`, it finds the end (`CRLF.CRLF`, nothing else), undoes
//! dot-stuffing, refuses bare LF and bare CR (SMTP smuggling: a next hop
//! that takes either for a line end would see a second message), counts the
//! size against the limit and keeps the content for the I/O layer, which
//! moves it to a spool file once [`DataReceiver::should_spill`] says so.

/// Longest line of message content (RFC 5321 says 1000 with CRLF; be lenient).
pub const MAX_DATA_LINE: usize = 64 * 1024;

/// Content kept in memory before it goes to the spool file.
pub const SPILL_THRESHOLD: usize = 64 * 1024;

/// Where the receiver is within the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// First byte of a line.
    LineStart,
    /// The line began with `.` (not yet kept: it may be the end, or stuffing).
    Dot,
    /// `.` then CR: the end if LF follows.
    DotCr,
    /// Inside a line.
    Middle,
    /// CR seen inside a line; only LF may follow.
    Cr,
}

/// What the receiver knows after a [`DataReceiver::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Needs more bytes.
    More,
    /// `CRLF.CRLF` seen: the message is complete.
    Done,
    /// A LF without CR before it.
    BareLf,
    /// A CR without LF after it.
    BareCr,
    /// A line longer than [`MAX_DATA_LINE`].
    LineTooLong,
}

impl Status {
    /// The reply that ends the session for a refused input (`None` for
    /// `More` and `Done`). The bare-LF text is Postfix 3.9's
    /// (`smtpd_forbid_bare_newline = normal`); bare CR gets the same form.
    pub fn refusal(self, hostname: &str) -> Option<String> {
        match self {
            Status::More | Status::Done => None,
            Status::BareLf => Some(format!("521 5.5.2 {hostname} Error: bare <LF> received")),
            Status::BareCr => Some(format!("521 5.5.2 {hostname} Error: bare <CR> received")),
            Status::LineTooLong => Some("500 5.5.0 Error: line too long".into()),
        }
    }
}

/// Checks a command line (as read up to and including LF): `None` when it
/// ends in CRLF and has no other CR, else why it is refused.
pub fn check_command_line(line: &[u8]) -> Result<&[u8], Status> {
    let Some(body) = line.strip_suffix(b"\r\n") else {
        return Err(if line.ends_with(b"\n") {
            Status::BareLf
        } else {
            Status::BareCr
        });
    };
    if body.contains(&b'\r') {
        return Err(Status::BareCr);
    }
    Ok(body)
}

/// One message being received.
#[derive(Debug)]
pub struct DataReceiver {
    at: At,
    limit: u64,
    /// Content bytes seen (after unstuffing), also past the limit.
    size: u64,
    line_len: usize,
    /// Content not yet taken by the I/O layer.
    out: Vec<u8>,
    finished: Option<Status>,
}

impl DataReceiver {
    /// `limit`: `message_size_limit`; content past it is counted, not kept.
    pub fn new(limit: u64) -> DataReceiver {
        DataReceiver {
            at: At::LineStart,
            limit,
            size: 0,
            line_len: 0,
            out: Vec::new(),
            finished: None,
        }
    }

    /// Feed bytes; returns how many were used and the status. Bytes after
    /// the end of the message are left unused (the next pipelined command).
    /// After a status other than `More`, further input is ignored.
    pub fn feed(&mut self, input: &[u8]) -> (usize, Status) {
        if let Some(s) = self.finished {
            return (0, s);
        }
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.at {
                At::LineStart if b == b'.' => {
                    self.at = At::Dot;
                    self.line_len = 1;
                    i += 1;
                    continue;
                }
                At::LineStart => {
                    self.line_len = 0;
                    self.at = At::Middle;
                    continue;
                }
                At::Dot if b == b'\r' => self.at = At::DotCr,
                // Dot-stuffing: the leading dot is dropped, the rest kept.
                At::Dot => {
                    self.at = At::Middle;
                    continue;
                }
                At::DotCr if b == b'\n' => return self.finish(i + 1, Status::Done),
                At::DotCr => return self.finish(i, Status::BareCr),
                At::Middle => {
                    // Copy the run up to the next CR or LF in one go.
                    let run = input[i..]
                        .iter()
                        .position(|&c| c == b'\r' || c == b'\n')
                        .unwrap_or(input.len() - i);
                    if self.line_len + run > MAX_DATA_LINE {
                        return self.finish(i, Status::LineTooLong);
                    }
                    self.keep(&input[i..i + run]);
                    self.line_len += run;
                    i += run;
                    match input.get(i) {
                        Some(b'\r') => self.at = At::Cr,
                        Some(_) => return self.finish(i, Status::BareLf),
                        None => return (i, Status::More),
                    }
                }
                At::Cr if b == b'\n' => {
                    self.keep(b"\r\n");
                    self.at = At::LineStart;
                }
                At::Cr => return self.finish(i, Status::BareCr),
            }
            i += 1;
        }
        (i, Status::More)
    }

    fn finish(&mut self, used: usize, s: Status) -> (usize, Status) {
        self.finished = Some(s);
        (used, s)
    }

    fn keep(&mut self, bytes: &[u8]) {
        self.size += bytes.len() as u64;
        if self.size <= self.limit {
            self.out.extend_from_slice(bytes);
        } else {
            // The message will be refused: hold none of it.
            self.out = Vec::new();
        }
    }

    /// Content bytes received so far (dot-unstuffed), also past the limit.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The message is over `message_size_limit` (its content is dropped).
    pub fn too_big(&self) -> bool {
        self.size > self.limit
    }

    /// Enough content is held that it should go to the spool file.
    pub fn should_spill(&self) -> bool {
        self.out.len() >= SPILL_THRESHOLD
    }

    /// The content received since the last call.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed in pieces of `step` bytes; returns content, status, bytes used.
    fn run(input: &[u8], step: usize, limit: u64) -> (Vec<u8>, Status, usize) {
        let mut r = DataReceiver::new(limit);
        let mut used = 0;
        let mut status = Status::More;
        for chunk in input.chunks(step.max(1)) {
            let (n, s) = r.feed(chunk);
            used += n;
            status = s;
            if s != Status::More {
                break;
            }
        }
        (r.take(), status, used)
    }

    fn every_split(input: &[u8]) -> Vec<(Vec<u8>, Status, usize)> {
        (1..=input.len() + 1)
            .map(|s| run(input, s, 1 << 20))
            .collect()
    }

    #[test]
    fn end_of_data_and_what_follows_it() {
        let input = b"Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n";
        for (content, status, used) in every_split(input) {
            assert_eq!(status, Status::Done);
            assert_eq!(content, b"Subject: x\r\n\r\nbody\r\n");
            assert_eq!(&input[used..], b"QUIT\r\n");
        }
    }

    #[test]
    fn empty_message() {
        assert_eq!(run(b".\r\n", 1, 10), (Vec::new(), Status::Done, 3));
    }

    #[test]
    fn dot_unstuffing() {
        let (content, status, _) = run(b"..leading\r\n...\r\n.x\r\n.\r\n", 7, 1000);
        assert_eq!(status, Status::Done);
        assert_eq!(content, b".leading\r\n..\r\nx\r\n");
    }

    #[test]
    fn bare_lf_anywhere_is_refused() {
        for input in [
            &b"a\nb\r\n.\r\n"[..],
            b"\n.\r\n",
            b"a\r\n.\n",
            b"a\r\n\n.\n",
        ] {
            for (_, status, _) in every_split(input) {
                assert_eq!(status, Status::BareLf, "{input:?}");
            }
        }
    }

    #[test]
    fn bare_cr_anywhere_is_refused() {
        // The smuggling payload: a next hop that ends lines at CR would see
        // the end of data and a second transaction.
        let smuggle = b"x\r\n\r.\rMAIL FROM:<x@y>\r\n.\r\n";
        for input in [
            &smuggle[..],
            b"a\rb\r\n.\r\n",
            b"a\r\n.\r.\r\n",
            b"\r\r\n.\r\n",
            b"a\r\n.\rx",
        ] {
            for (_, status, _) in every_split(input) {
                assert_eq!(status, Status::BareCr, "{input:?}");
            }
        }
    }

    #[test]
    fn size_is_counted_past_the_limit_but_not_kept() {
        let mut r = DataReceiver::new(5);
        assert_eq!(r.feed(b"0123456789\r\n.\r\n").1, Status::Done);
        assert!(r.too_big());
        assert!(r.take().is_empty());
        assert_eq!(r.size(), 12);
    }

    #[test]
    fn long_lines_are_refused() {
        let mut input = vec![b'a'; MAX_DATA_LINE + 1];
        input.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(run(&input, 4096, u64::MAX).1, Status::LineTooLong);
        let mut ok = vec![b'a'; MAX_DATA_LINE];
        ok.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(run(&ok, 4096, u64::MAX).1, Status::Done);
    }

    #[test]
    fn spill_is_asked_for_at_the_threshold() {
        let mut r = DataReceiver::new(u64::MAX);
        let line = [b"x".repeat(998), b"\r\n".to_vec()].concat();
        let mut n = 0;
        while !r.should_spill() {
            assert_eq!(r.feed(&line).1, Status::More);
            n += line.len();
        }
        assert!(n >= SPILL_THRESHOLD && n < SPILL_THRESHOLD + line.len());
        assert_eq!(r.take().len(), n);
        assert!(!r.should_spill());
    }

    #[test]
    fn nothing_is_taken_after_the_end() {
        let mut r = DataReceiver::new(100);
        assert_eq!(r.feed(b"a\r\n.\r\n"), (6, Status::Done));
        assert_eq!(r.feed(b"b\r\n"), (0, Status::Done));
        assert_eq!(r.take(), b"a\r\n");
    }

    #[test]
    fn command_lines() {
        assert_eq!(check_command_line(b"EHLO x\r\n"), Ok(&b"EHLO x"[..]));
        assert_eq!(check_command_line(b"EHLO x\n"), Err(Status::BareLf));
        assert_eq!(check_command_line(b"EHLO\rx\r\n"), Err(Status::BareCr));
        assert_eq!(check_command_line(b"EHLO x\r"), Err(Status::BareCr));
        assert_eq!(
            Status::BareCr.refusal("mx").as_deref(),
            Some("521 5.5.2 mx Error: bare <CR> received")
        );
    }
}
