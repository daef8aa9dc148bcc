//! Delivery of an accepted message, done before the client hears 250 so
//! nothing is lost: forwarding to the next hop (`relayhost`), or writing
//! into a Maildir for local domains (file and directory synced).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::command::Address;
use super::spool::{CHUNK, Message};

/// How a delivery failed: temporary (the client should retry) or final.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryError {
    Temporary(String),
    Permanent(String),
}

impl DeliveryError {
    pub fn reply(&self) -> String {
        match self {
            DeliveryError::Temporary(why) => format!("451 4.3.0 Error: {why}; try again later"),
            DeliveryError::Permanent(why) => format!("554 5.0.0 Error: {why}"),
        }
    }
}

/// A local part safe as one path component.
fn mailbox_dir(base: &Path, rcpt: &Address) -> Result<PathBuf, DeliveryError> {
    let local = rcpt.dequoted_local().to_ascii_lowercase();
    let ok = |s: &str| !s.is_empty() && !s.starts_with('.') && !s.contains(['/', '\0', '\\']);
    if !ok(&local) || !ok(&rcpt.domain) {
        return Err(DeliveryError::Permanent(format!(
            "cannot store mail for <{rcpt}>"
        )));
    }
    Ok(base.join(&rcpt.domain).join(local).join("Maildir"))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Write one copy into `<base>/<domain>/<local>/Maildir/new`, through `tmp`
/// with fsync of the file and of `new`, as Maildir readers expect.
pub fn maildir(
    base: &Path,
    rcpt: &Address,
    unique: &str,
    message: &Message,
) -> Result<PathBuf, DeliveryError> {
    let temp = |e: std::io::Error| DeliveryError::Temporary(e.to_string());
    let dir = mailbox_dir(base, rcpt)?;
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(temp)?;
    }
    let tmp = dir.join("tmp").join(unique);
    let mut f = std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(temp)?;
    message.copy_to(&mut f).map_err(temp)?;
    f.sync_all().map_err(temp)?;
    drop(f);
    let new = dir.join("new").join(unique);
    std::fs::rename(&tmp, &new).map_err(temp)?;
    sync_dir(&dir.join("new")).map_err(temp)?;
    Ok(new)
}

async fn expect(reader: &mut BufReader<TcpStream>, want: char) -> Result<String, DeliveryError> {
    let mut last;
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(300), reader.read_line(&mut line))
            .await
            .map_err(|_| DeliveryError::Temporary("next hop timed out".into()))?
            .map_err(|e| DeliveryError::Temporary(format!("next hop: {e}")))?;
        if n == 0 || line.len() < 4 {
            return Err(DeliveryError::Temporary(
                "next hop closed the connection".into(),
            ));
        }
        let more = line.as_bytes()[3] == b'-';
        last = line.trim_end().to_string();
        if !more {
            break;
        }
    }
    match last.chars().next() {
        Some(c) if c == want => Ok(last),
        Some('5') => Err(DeliveryError::Permanent(format!("next hop said: {last}"))),
        _ => Err(DeliveryError::Temporary(format!("next hop said: {last}"))),
    }
}

async fn send(r: &mut BufReader<TcpStream>, line: String) -> Result<(), DeliveryError> {
    let line = line + "\r\n";
    r.get_mut()
        .write_all(line.as_bytes())
        .await
        .map_err(|e| DeliveryError::Temporary(format!("next hop: {e}")))
}

/// Forward over SMTP to `next_hop` (host:port); returns its final reply.
pub async fn relay(
    next_hop: &str,
    helo: &str,
    from: Option<&Address>,
    to: &[Address],
    message: &Message,
) -> Result<String, DeliveryError> {
    let stream = tokio::time::timeout(Duration::from_secs(30), TcpStream::connect(next_hop))
        .await
        .map_err(|_| DeliveryError::Temporary(format!("connect to {next_hop}: timed out")))?
        .map_err(|e| DeliveryError::Temporary(format!("connect to {next_hop}: {e}")))?;
    // Each command is one write that waits for its reply: Nagle would only
    // hold a small write back for the peer's delayed ACK (40 ms).
    let _ = stream.set_nodelay(true);
    let mut r = BufReader::new(stream);
    expect(&mut r, '2').await?;
    send(&mut r, format!("EHLO {helo}")).await?;
    expect(&mut r, '2').await?;
    let from = from.map(|a| a.to_string()).unwrap_or_default();
    send(&mut r, format!("MAIL FROM:<{from}>")).await?;
    expect(&mut r, '2').await?;
    for rcpt in to {
        send(&mut r, format!("RCPT TO:<{rcpt}>")).await?;
        expect(&mut r, '2').await?;
    }
    send(&mut r, "DATA".into()).await?;
    expect(&mut r, '3').await?;
    let mut stuffer = DotStuffer::default();
    let mut offset = 0;
    let mut pending: Vec<u8> = Vec::new();
    loop {
        // A local read of at most one chunk (page cache, usually).
        let chunk = message
            .read_at(offset, CHUNK)
            .map_err(|e| DeliveryError::Temporary(format!("queue file read error: {e}")))?;
        if chunk.is_empty() {
            break;
        }
        offset += chunk.len() as u64;
        // The previous chunk goes now; the last one leaves with the end
        // marker, in one write.
        if !pending.is_empty() {
            r.get_mut()
                .write_all(&pending)
                .await
                .map_err(|e| DeliveryError::Temporary(format!("next hop: {e}")))?;
        }
        pending = stuffer.stuff(&chunk);
    }
    pending.extend_from_slice(stuffer.end());
    r.get_mut()
        .write_all(&pending)
        .await
        .map_err(|e| DeliveryError::Temporary(format!("next hop: {e}")))?;
    let done = expect(&mut r, '2').await?;
    let _ = send(&mut r, "QUIT".into()).await;
    Ok(done)
}

/// Dot-stuffing for the wire, fed the message a chunk at a time.
struct DotStuffer {
    line_start: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer { line_start: true }
    }
}

impl DotStuffer {
    fn stuff(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(chunk.len() + 16);
        for &b in chunk {
            if self.line_start && b == b'.' {
                out.push(b'.');
            }
            out.push(b);
            self.line_start = b == b'\n';
        }
        out
    }

    /// The end of data, after a CRLF if the message lacks a final one.
    fn end(&self) -> &'static [u8] {
        if self.line_start {
            b".\r\n"
        } else {
            b"\r\n.\r\n"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_across_chunk_boundaries() {
        let text = b".a\r\nb\r\n..c\r\nd.\r\n.";
        for step in 1..=text.len() {
            let mut s = DotStuffer::default();
            let mut out: Vec<u8> = text.chunks(step).flat_map(|c| s.stuff(c)).collect();
            out.extend_from_slice(s.end());
            assert_eq!(out, b"..a\r\nb\r\n...c\r\nd.\r\n..\r\n.\r\n", "{step}");
        }
    }
}
