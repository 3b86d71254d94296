//! How a record is written to a log file: raw, prefixed with the time, or as a JSON object.

use kelpie_core::{AppSpec, DateFormat, LogType};
use kelpie_proto::LogStream;

/// The format of one app's log lines.
#[derive(Debug)]
pub enum LineFormat {
    /// The bytes as the app wrote them.
    Raw,
    /// `<time>: <line>` (PM2's fork-mode prefix).
    Dated(DateFormat),
    /// One JSON object per line, PM2's keys; the time is ISO 8601 (UTC) unless a format is set.
    Json(Option<DateFormat>),
}

impl LineFormat {
    /// The format an app asks for.
    pub fn for_spec(spec: &AppSpec) -> LineFormat {
        let date = spec.log_date_format.as_deref().map(DateFormat::parse);
        match (spec.log_type, date) {
            (LogType::Json, date) => LineFormat::Json(date),
            (LogType::Raw, Some(date)) => LineFormat::Dated(date),
            (LogType::Raw, None) => LineFormat::Raw,
        }
    }

    /// The date each line starts with in the file, when there is one.
    pub fn line_dates(self) -> Option<DateFormat> {
        match self {
            LineFormat::Dated(date) => Some(date),
            LineFormat::Raw | LineFormat::Json(_) => None,
        }
    }

    /// What goes around each record of a chunk that arrived at `now_ms` (computed once per chunk,
    /// not per line).
    pub fn frame(&self, now_ms: i64, stream: LogStream, who: &Who<'_>) -> Frame {
        let offset = || kelpie_sys::utc_offset_secs(now_ms.div_euclid(1000));
        match self {
            LineFormat::Raw => Frame::Raw,
            LineFormat::Dated(date) => {
                let mut prefix = Vec::with_capacity(40);
                date.write(now_ms, offset(), &mut prefix);
                prefix.extend_from_slice(b": ");
                Frame::Prefixed(prefix)
            }
            LineFormat::Json(date) => {
                let timestamp = match date {
                    Some(date) => date.format(now_ms, offset()),
                    None => kelpie_core::format_utc(now_ms.max(0) as u64, true),
                };
                let mut suffix = Vec::with_capacity(128);
                suffix.extend_from_slice(b",\"timestamp\":");
                json_string(&timestamp, &mut suffix);
                suffix.extend_from_slice(b",\"type\":\"");
                suffix.extend_from_slice(stream.pm2_name().as_bytes());
                suffix.extend_from_slice(b"\",\"process_id\":");
                suffix.extend_from_slice(who.pm_id.to_string().as_bytes());
                suffix.extend_from_slice(b",\"app_name\":");
                json_string(who.app_name, &mut suffix);
                suffix.extend_from_slice(b",\"instance\":");
                suffix.extend_from_slice(who.instance.to_string().as_bytes());
                suffix.extend_from_slice(b"}\n");
                Frame::Json(suffix)
            }
        }
    }
}

/// The instance a line comes from, as written in JSON lines.
pub struct Who<'a> {
    /// Its id.
    pub pm_id: u32,
    /// Its index among its app's instances.
    pub instance: u32,
    /// Its app's name.
    pub app_name: &'a str,
}

/// The bytes around each record of one chunk.
pub enum Frame {
    /// Nothing: the record and its newline, byte for byte.
    Raw,
    /// This prefix, the record, a newline.
    Prefixed(Vec<u8>),
    /// `{"message":<record>` then this suffix (which closes the object and the line).
    Json(Vec<u8>),
}

impl Frame {
    /// What goes before each record (its date), when that is all the format adds.
    pub fn prefix(&self) -> Option<&[u8]> {
        match self {
            Frame::Prefixed(prefix) => Some(prefix),
            Frame::Raw | Frame::Json(_) => None,
        }
    }

    /// Append one record. Raw output is byte-exact (a record cut short gets no newline, so the
    /// pieces join up again); the other formats end every record with a newline.
    pub fn append(&self, record: &[u8], complete: bool, out: &mut Vec<u8>) {
        match self {
            Frame::Raw => {
                out.extend_from_slice(record);
                if complete {
                    out.push(b'\n');
                }
            }
            Frame::Prefixed(prefix) => {
                out.extend_from_slice(prefix);
                out.extend_from_slice(record);
                out.push(b'\n');
            }
            Frame::Json(suffix) => {
                out.extend_from_slice(b"{\"message\":");
                json_string(&String::from_utf8_lossy(record), out);
                out.extend_from_slice(suffix);
            }
        }
    }
}

/// Append `text` as a JSON string literal.
fn json_string(text: &str, out: &mut Vec<u8>) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHO: Who<'static> = Who {
        pm_id: 3,
        instance: 1,
        app_name: "api",
    };

    fn render(format: &LineFormat, records: &[(&[u8], bool)]) -> Vec<u8> {
        let frame = format.frame(1_709_210_096_789, LogStream::Err, &WHO);
        let mut out = Vec::new();
        for (record, complete) in records {
            frame.append(record, *complete, &mut out);
        }
        out
    }

    #[test]
    fn raw_is_byte_exact() {
        let out = render(
            &LineFormat::Raw,
            &[(b"\xff\x00a\r", true), (b"part", false)],
        );
        assert_eq!(out, b"\xff\x00a\r\npart");
    }

    #[test]
    fn dated_prefixes_every_line() {
        let format = LineFormat::Dated(DateFormat::parse("YYYY"));
        let out = render(&format, &[(b"one", true), (b"two", false)]);
        assert_eq!(out, b"2024: one\n2024: two\n");
    }

    #[test]
    fn json_lines_use_pm2_keys_and_escape_the_message() {
        let out = render(&LineFormat::Json(None), &[(b"say \"hi\"\t\xff", true)]);
        let text = String::from_utf8(out).expect("json is utf-8");
        assert!(text.ends_with('\n'));
        let value: serde_json::Value = serde_json::from_str(text.trim_end()).expect("valid json");
        assert_eq!(value["message"], "say \"hi\"\t\u{fffd}");
        assert_eq!(value["timestamp"], "2024-02-29T12:34:56.789Z");
        assert_eq!(value["type"], "err");
        assert_eq!(value["process_id"], 3);
        assert_eq!(value["app_name"], "api");
        assert_eq!(value["instance"], 1);
    }
}
