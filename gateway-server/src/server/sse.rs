//! Reading a Server-Sent Events stream: bytes in, whole messages out.
//!
//! Messages end at a blank line; a field is `name: value` (one space after
//! the colon dropped), `data` lines join with `\n`, lines starting with `:`
//! are comments. Fields other than `id`, `event` and `data` are kept too:
//! the gateway's event stream sends each event's `signature` as one.

/// One message of the stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SseMessage {
    /// `id:` (the event id).
    pub(crate) id: Option<String>,
    /// `event:` (the event type).
    pub(crate) event: Option<String>,
    /// Every `data:` line, joined with `\n`.
    pub(crate) data: String,
    /// Any other field, in order.
    pub(crate) other: Vec<(String, String)>,
}

impl SseMessage {
    /// The value of another field, e.g. `signature`.
    pub(crate) fn field(&self, name: &str) -> Option<&str> {
        self.other
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Splits a byte stream into messages; keeps a partial message until its end arrives.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    /// Bytes of the line not ended yet.
    line: Vec<u8>,
    /// The message being read.
    message: SseMessage,
    /// Whether the message has any field yet.
    started: bool,
}

/// The longest line kept: a longer one is a broken stream, cut off here.
const MAX_LINE: usize = 1 << 20;

impl SseParser {
    /// Adds `chunk`; returns the messages it completed.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<SseMessage> {
        let mut done = Vec::new();
        for &byte in chunk {
            if byte != b'\n' {
                if self.line.len() < MAX_LINE {
                    self.line.push(byte);
                }
                continue;
            }
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.is_empty() {
                if self.started {
                    done.push(std::mem::take(&mut self.message));
                    self.started = false;
                }
                continue;
            }
            self.field(&String::from_utf8_lossy(&line));
        }
        done
    }

    fn field(&mut self, line: &str) {
        if line.starts_with(':') {
            return;
        }
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
        self.started = true;
        match name {
            "id" => self.message.id = Some(value),
            "event" => self.message.event = Some(value),
            "data" => {
                if !self.message.data.is_empty() {
                    self.message.data.push('\n');
                }
                self.message.data.push_str(&value);
            }
            _ => self.message.other.push((name.to_owned(), value)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_split_across_chunks_and_comments_skipped() {
        let mut parser = SseParser::default();
        assert!(parser.push(b": keep-alive\n\nid: evt_1\nevent: pay").is_empty());
        let messages =
            parser.push(b"ment.completed\nsignature: t=1,v1=aa\r\ndata: {\"a\":\ndata: 1}\n\nid: evt_2\n");
        assert_eq!(
            messages,
            vec![SseMessage {
                id: Some("evt_1".into()),
                event: Some("payment.completed".into()),
                data: "{\"a\":\n1}".into(),
                other: vec![("signature".into(), "t=1,v1=aa".into())],
            }]
        );
        assert_eq!(messages[0].field("signature"), Some("t=1,v1=aa"));
        let rest = parser.push(b"data:x\n\n");
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].id.as_deref(), Some("evt_2"));
        assert_eq!(rest[0].data, "x");
    }

    #[test]
    fn blank_lines_alone_make_no_message() {
        let mut parser = SseParser::default();
        assert!(parser.push(b"\n\n\r\n: only a comment\n\n").is_empty());
    }
}
