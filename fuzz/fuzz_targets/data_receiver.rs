#![no_main]
//! The DATA receiver fed arbitrary bytes in arbitrary pieces: no panic;
//! what it keeps never holds a bare CR or LF, never exceeds the limit, and
//! (with where it stops) never depends on how the input was split.
use libfuzzer_sys::fuzz_target;
use sasldb::smtp::data::{DataReceiver, Status};

/// What was kept (`None` when over the limit), the status, bytes used.
fn run(data: &[u8], step: usize, limit: u64) -> (Option<Vec<u8>>, Status, usize) {
    let mut r = DataReceiver::new(limit);
    let (mut kept, mut used, mut status) = (Vec::new(), 0, Status::More);
    for chunk in data.chunks(step) {
        let (n, s) = r.feed(chunk);
        assert!(n <= chunk.len());
        used += n;
        status = s;
        if r.should_spill() {
            kept.extend(r.take());
        }
        if s != Status::More {
            break;
        }
    }
    kept.extend(r.take());
    if r.too_big() {
        return (None, status, used);
    }
    assert_eq!(kept.len() as u64, r.size());
    (Some(kept), status, used)
}

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, input)) = data.split_first() else { return };
    let step = usize::from(knobs & 0x3f) + 1;
    let limit = if knobs & 0x40 != 0 { 64 } else { u64::MAX };
    let split = run(input, step, limit);
    assert_eq!(split, run(input, input.len().max(1), limit));
    let (kept, status, used) = split;
    let kept = kept.unwrap_or_default();
    assert!(kept.len() as u64 <= limit);
    if status == Status::Done {
        assert!(input[..used].ends_with(b"\r\n.\r\n") || input[..used] == *b".\r\n");
    }
    // Every CR is followed by LF and every LF preceded by CR.
    for (i, &b) in kept.iter().enumerate() {
        match b {
            b'\r' => assert_eq!(kept.get(i + 1), Some(&b'\n')),
            b'\n' => assert!(i > 0 && kept[i - 1] == b'\r'),
            _ => {}
        }
    }
});
