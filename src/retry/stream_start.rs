//! Finding the first meaningful event of a server-sent-event stream, so that
//! a stream whose first event is a retryable error can be retried before any
//! content reaches the caller.
//!
//! The scanner follows the SSE format (WHATWG HTML, "Server-sent events"):
//! lines end with CRLF, LF or CR, and may be split across chunks at any byte;
//! lines starting with `:` are comments; `data:` lines of one event are
//! joined with LF; an event is dispatched at a blank line when it has data.
//! `ping` events are skipped.

use http_body::Body;

use super::body::{Prefetched, ReadOutcome, Watch};

/// The first event of a stream: its type (`message` when unnamed) and data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Event {
    pub(crate) name: Vec<u8>,
    pub(crate) data: Vec<u8>,
}

/// Scans a stream's bytes for its first meaningful event.
#[derive(Debug, Default)]
pub(crate) struct FirstEvent {
    line: Vec<u8>,
    after_cr: bool,
    started: bool,
    name: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    found: Option<Event>,
}

impl FirstEvent {
    /// The first meaningful event, once seen.
    pub(crate) fn event(&self) -> Option<&Event> {
        self.found.as_ref()
    }

    fn line_done(&mut self) {
        let line = std::mem::take(&mut self.line);
        let line = if self.started {
            line.as_slice()
        } else {
            self.started = true;
            line.strip_prefix("\u{feff}".as_bytes()).unwrap_or(&line)
        };
        if line.is_empty() {
            self.dispatch();
        } else if line.first() != Some(&b':') {
            let (field, value) = match line.iter().position(|&b| b == b':') {
                Some(colon) => {
                    let (field, value) = line.split_at(colon);
                    let value = value.get(1..).unwrap_or_default();
                    (field, value.strip_prefix(b" ").unwrap_or(value))
                }
                None => (line, &[][..]),
            };
            match field {
                b"event" => self.name = value.to_vec(),
                b"data" => {
                    if self.has_data {
                        self.data.push(b'\n');
                    }
                    self.data.extend_from_slice(value);
                    self.has_data = true;
                }
                _ => {}
            }
        }
    }

    fn dispatch(&mut self) {
        let name = std::mem::take(&mut self.name);
        let data = std::mem::take(&mut self.data);
        let has_data = std::mem::replace(&mut self.has_data, false);
        if !has_data || name == b"ping" {
            return;
        }
        let name = if name.is_empty() {
            b"message".to_vec()
        } else {
            name
        };
        self.found = Some(Event { name, data });
    }
}

impl<B: Body> Prefetched<B, FirstEvent> {
    /// The stream's first event, when it was seen whole within the cap.
    pub(crate) fn first_event(&self) -> Option<&Event> {
        match self.outcome {
            ReadOutcome::Enough => self.watch.event(),
            _ => None,
        }
    }
}

impl Watch for FirstEvent {
    fn feed(&mut self, chunk: &[u8]) -> bool {
        for &byte in chunk {
            if self.found.is_some() {
                break;
            }
            match byte {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' => self.line_done(),
                b'\r' => {
                    self.after_cr = true;
                    self.line_done();
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(byte);
                }
            }
        }
        self.found.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(chunks: &[&[u8]]) -> Option<Event> {
        let mut scanner = FirstEvent::default();
        for chunk in chunks {
            if scanner.feed(chunk) {
                break;
            }
        }
        scanner.found
    }

    const ERROR: &[u8] = b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";

    #[test]
    fn finds_an_error_event() {
        let event = first(&[ERROR]).unwrap();
        assert_eq!(event.name, b"error");
        assert!(event.data.starts_with(br#"{"type":"error""#));
    }

    #[test]
    fn skips_comments_pings_and_blank_lines() {
        let stream = b": hello\n\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\nevent: message_start\ndata: {}\n\n";
        let event = first(&[stream]).unwrap();
        assert_eq!(event.name, b"message_start");
        assert_eq!(event.data, b"{}");
    }

    #[test]
    fn any_split_point_and_any_line_ending() {
        for ending in ["\n", "\r\n", "\r"] {
            let text = format!("event: error{ending}data: a{ending}data:b{ending}{ending}");
            let bytes = text.as_bytes();
            for split in 0..=bytes.len() {
                let (a, b) = bytes.split_at(split);
                let event = first(&[a, b]).unwrap_or_else(|| panic!("{ending:?} split at {split}"));
                assert_eq!(event.name, b"error");
                assert_eq!(event.data, b"a\nb", "{ending:?} split at {split}");
            }
            let singles: Vec<&[u8]> = bytes.chunks(1).collect();
            assert_eq!(first(&singles).unwrap().data, b"a\nb");
        }
    }

    #[test]
    fn unnamed_event_is_a_message_and_bom_is_ignored() {
        let event = first(&["\u{feff}data: x\n\n".as_bytes()]).unwrap();
        assert_eq!(event.name, b"message");
        assert_eq!(event.data, b"x");
    }

    #[test]
    fn an_event_without_data_is_not_dispatched() {
        assert_eq!(first(&[b"event: error\n\n"]), None);
        assert_eq!(
            first(&[b"event: error\ndata: x\n"]),
            None,
            "not yet terminated"
        );
    }
}
