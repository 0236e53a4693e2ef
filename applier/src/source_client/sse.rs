//! A server-sent events parser (the WHATWG `text/event-stream` format) over byte chunks as they
//! arrive: lines end in LF, CRLF or CR; `:` starts a comment (keep-alives); a blank line
//! dispatches the event. Lines are bounded so a hostile server cannot grow the buffer forever.

/// Longest line accepted.
pub const MAX_LINE: usize = 1024 * 1024;
/// Most data one event may carry (over all its `data:` lines).
pub const MAX_DATA: usize = 4 * 1024 * 1024;

/// One dispatched event. `event` defaults to `message`, as in browsers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
    /// The `id` field, when this event set one.
    pub id: Option<String>,
}

#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous chunk ended in CR: a LF starting this one belongs to it.
    after_cr: bool,
    event: String,
    data: String,
    has_data: bool,
    id: Option<String>,
}

impl SseParser {
    /// Feeds bytes; returns the events completed by them.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, String> {
        let mut out = vec![];
        for &b in chunk {
            let after_cr = std::mem::take(&mut self.after_cr);
            match b {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(ev) = self.line_done(&line) {
                        out.push(ev);
                    }
                    if self.data.len() > MAX_DATA {
                        return Err(format!("event data larger than {MAX_DATA} bytes"));
                    }
                }
                _ => {
                    if self.line.len() >= MAX_LINE {
                        return Err(format!("event stream line longer than {MAX_LINE} bytes"));
                    }
                    self.line.push(b);
                }
            }
        }
        Ok(out)
    }

    fn line_done(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            let ev = SseEvent {
                event: if self.event.is_empty() {
                    "message".into()
                } else {
                    std::mem::take(&mut self.event)
                },
                data: std::mem::take(&mut self.data),
                id: self.id.take(),
            };
            let dispatch = std::mem::take(&mut self.has_data);
            self.event.clear();
            // An event without data is not dispatched, but its id still counts for resuming.
            return if dispatch || ev.id.is_some() {
                Some(ev)
            } else {
                None
            };
        }
        let line = String::from_utf8_lossy(line);
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_split_across_chunks_and_line_endings() {
        let mut p = SseParser::default();
        let mut got = vec![];
        for chunk in [
            &b": keep-alive\n\nevent: artif"[..],
            b"act\r\nid: 7\r\ndata: {\"a\":\r",
            b"\ndata: 1}\n\n",
            b"data: plain\rid:8\r\r",
        ] {
            got.extend(p.feed(chunk).expect("valid"));
        }
        assert_eq!(
            got,
            [
                SseEvent {
                    event: "artifact".into(),
                    data: "{\"a\":\n1}".into(),
                    id: Some("7".into()),
                },
                SseEvent {
                    event: "message".into(),
                    data: "plain".into(),
                    id: Some("8".into()),
                },
            ]
        );
    }

    #[test]
    fn refuses_endless_lines_and_endless_events() {
        let mut p = SseParser::default();
        let big = vec![b'a'; MAX_LINE + 1];
        assert!(p.feed(&big).is_err());

        let mut p = SseParser::default();
        let line = format!("data: {}\n", "x".repeat(1000));
        let mut err = None;
        for _ in 0..(MAX_DATA / 1000 + 2) {
            if let Err(e) = p.feed(line.as_bytes()) {
                err = Some(e);
                break;
            }
        }
        assert!(
            err.is_some_and(|e| e.contains("event data")),
            "unbounded event"
        );
    }
}
