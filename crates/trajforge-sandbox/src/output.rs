//! Results of sandboxed commands and output capture with clipping.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What one command produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutput {
    /// Standard output and error interleaved, clipped in the middle with a visible note.
    pub output: String,
    /// Exit code (128 + signal when killed by a signal); `None` if the shell was lost first.
    pub exit_code: Option<i32>,
    /// The command hit its wall-time limit and was killed.
    pub timed_out: bool,
    /// Wall time the command took.
    pub duration: Duration,
    /// Output bytes were dropped because of the output limit.
    pub clipped: bool,
    /// The persistent shell had to be restarted: working directory and variables were reset.
    pub shell_restarted: bool,
}

/// Keeps the head and tail of a byte stream within a budget.
#[derive(Debug)]
pub(crate) struct Capture {
    head_cap: usize,
    tail_cap: usize,
    head: Vec<u8>,
    tail: Vec<u8>,
    total: usize,
}

impl Capture {
    /// A capture keeping at most `cap` bytes.
    pub(crate) fn new(cap: usize) -> Self {
        let head_cap = cap / 2;
        Capture {
            head_cap,
            tail_cap: cap - head_cap,
            head: Vec::new(),
            tail: Vec::new(),
            total: 0,
        }
    }

    /// Appends bytes.
    pub(crate) fn push(&mut self, mut data: &[u8]) {
        self.total += data.len();
        if self.head.len() < self.head_cap {
            let take = data.len().min(self.head_cap - self.head.len());
            self.head.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        self.tail.extend_from_slice(data);
        if self.tail.len() > self.tail_cap.saturating_mul(2).max(8192) {
            let excess = self.tail.len() - self.tail_cap;
            self.tail.drain(..excess);
        }
    }

    /// The kept text (lossy UTF-8) and whether anything was dropped.
    pub(crate) fn finish(mut self) -> (String, bool) {
        if self.tail.len() > self.tail_cap {
            let excess = self.tail.len() - self.tail_cap;
            self.tail.drain(..excess);
        }
        let kept = self.head.len() + self.tail.len();
        if kept == self.total {
            self.head.extend_from_slice(&self.tail);
            return (String::from_utf8_lossy(&self.head).into_owned(), false);
        }
        let omitted = self.total - kept;
        let text = format!(
            "{}\n[... output clipped: {omitted} of {} bytes omitted ...]\n{}",
            String::from_utf8_lossy(&self.head),
            self.total,
            String::from_utf8_lossy(&self.tail)
        );
        (text, true)
    }

    /// [`Capture::finish`] for a command, with a note when it was killed at `timeout`.
    pub(crate) fn finish_command(self, timed_out: bool, timeout: Duration) -> (String, bool) {
        let (mut output, clipped) = self.finish();
        if timed_out {
            output.push_str(&format!(
                "\n[trajforge: command timed out after {} s and was killed]",
                timeout.as_secs_f64()
            ));
        }
        (output, clipped)
    }
}

/// Finds `__PREFIX<digits>__\n` markers in a byte stream, passing other bytes through.
#[derive(Debug)]
pub(crate) struct MarkerScanner {
    prefix: Vec<u8>,
    pending: Vec<u8>,
}

/// Longest run of digits (and sign) accepted after a marker prefix.
const MAX_NUMBER: usize = 24;

impl MarkerScanner {
    /// A scanner for markers starting with `prefix`.
    pub(crate) fn new(prefix: String) -> Self {
        MarkerScanner {
            prefix: prefix.into_bytes(),
            pending: Vec::new(),
        }
    }

    /// Feeds bytes; output before a marker goes to `sink`. Returns the marker's number once
    /// a complete marker was seen (bytes after it are dropped).
    pub(crate) fn feed(&mut self, data: &[u8], sink: &mut Capture) -> Option<i64> {
        self.pending.extend_from_slice(data);
        let mut start = 0;
        while let Some(rel) = find(&self.pending[start..], &self.prefix) {
            let pos = start + rel;
            let rest = &self.pending[pos + self.prefix.len()..];
            match parse_number(rest) {
                Parse::Done(n) => {
                    sink.push(&self.pending[..pos]);
                    self.pending.clear();
                    return Some(n);
                }
                Parse::NeedMore => {
                    sink.push(&self.pending[..pos]);
                    self.pending.drain(..pos);
                    return None;
                }
                Parse::NotAMarker => start = pos + 1,
            }
        }
        // Keep a tail that could be the start of a marker split across reads.
        let keep = self.prefix.len().saturating_sub(1).min(self.pending.len());
        let flush = self.pending.len() - keep;
        sink.push(&self.pending[..flush]);
        self.pending.drain(..flush);
        None
    }

    /// Hands bytes still held back (no marker came) to `sink`.
    pub(crate) fn flush(&mut self, sink: &mut Capture) {
        sink.push(&self.pending);
        self.pending.clear();
    }
}

/// Result of parsing `<digits>__\n`.
enum Parse {
    /// A complete number.
    Done(i64),
    /// Could still become a marker.
    NeedMore,
    /// Definitely not a marker.
    NotAMarker,
}

/// Parses the `<number>__\n` that ends a marker.
fn parse_number(rest: &[u8]) -> Parse {
    let digits = rest
        .iter()
        .take_while(|b| b.is_ascii_digit() || **b == b'-')
        .count();
    if digits == rest.len() {
        return if digits <= MAX_NUMBER {
            Parse::NeedMore
        } else {
            Parse::NotAMarker
        };
    }
    if digits == 0 || digits > MAX_NUMBER {
        return Parse::NotAMarker;
    }
    let tail = &rest[digits..];
    let end = b"__\n";
    if tail.len() < end.len() {
        return if end.starts_with(tail) {
            Parse::NeedMore
        } else {
            Parse::NotAMarker
        };
    }
    if !tail.starts_with(end) {
        return Parse::NotAMarker;
    }
    match std::str::from_utf8(&rest[..digits])
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(n) => Parse::Done(n),
        None => Parse::NotAMarker,
    }
}

/// First position of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_keeps_everything_under_the_limit() {
        let mut c = Capture::new(100);
        c.push(b"hello ");
        c.push(b"world");
        assert_eq!(c.finish(), ("hello world".to_owned(), false));
    }

    #[test]
    fn capture_clips_the_middle_with_a_note() {
        let mut c = Capture::new(10);
        for _ in 0..1000 {
            c.push(b"abcdefghij");
        }
        let (text, clipped) = c.finish();
        assert!(clipped);
        assert!(text.starts_with("abcde\n[... output clipped: 9990 of 10000 bytes omitted ...]\n"));
        assert!(text.ends_with("fghij"));
    }

    #[test]
    fn scanner_finds_markers_split_across_reads() {
        let mut c = Capture::new(1000);
        let mut s = MarkerScanner::new("__END_x_".to_owned());
        let stream = b"out __END_y_1__\nmore__END_x_42__\ntrailing";
        let mut found = None;
        for chunk in stream.chunks(3) {
            if let Some(n) = s.feed(chunk, &mut c) {
                found = Some(n);
                break;
            }
        }
        assert_eq!(found, Some(42));
        assert_eq!(c.finish().0, "out __END_y_1__\nmore");
    }

    #[test]
    fn scanner_passes_lookalikes_through() {
        let mut c = Capture::new(1000);
        let mut s = MarkerScanner::new("__E_".to_owned());
        assert_eq!(s.feed(b"__E_ab __E_1_ __E_7__\n", &mut c), Some(7));
        assert_eq!(c.finish().0, "__E_ab __E_1_ ");
    }
}
