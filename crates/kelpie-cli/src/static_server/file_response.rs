//! A file's response to a GET or HEAD: validators (`ETag`, `Last-Modified`), the conditional
//! requests they answer (RFC 9110 §13: `If-Match`, `If-Unmodified-Since` → 412;
//! `If-None-Match`, `If-Modified-Since` → 304), one byte range (`Range`, `If-Range` → 206, 416),
//! and the body streamed in chunks, so a file of any size costs one chunk of memory.
//!
//! Written here rather than taken from tower-http's `ServeFile`: that one brings mime_guess's
//! table of every media type, whose pointers a position-independent binary relocates at start,
//! which costs every `kelpie` process (the daemon included) 64 KB of memory of its own.

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::StatusCode;
use std::fs::Metadata;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;
use tokio::io::{AsyncRead, AsyncSeekExt, ReadBuf};

/// Bytes read from the file at a time.
const CHUNK: usize = 64 * 1024;

/// What a file's validators are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Validators {
    /// Strong: the modification time to the nanosecond and the size, so a file replaced within
    /// the same second still gets a new one.
    pub etag: String,
    /// Whole seconds since the epoch, as HTTP dates have.
    pub modified_secs: Option<i64>,
}

impl Validators {
    pub(super) fn of(meta: &Metadata) -> Validators {
        let since_epoch = meta
            .modified()
            .ok()
            .and_then(|time| time.duration_since(SystemTime::UNIX_EPOCH).ok());
        let (secs, nanos) = since_epoch.map_or((0, 0), |d| (d.as_secs(), d.subsec_nanos()));
        Validators {
            etag: format!("\"{secs:x}.{nanos:x}-{:x}\"", meta.len()),
            modified_secs: since_epoch.and_then(|d| i64::try_from(d.as_secs()).ok()),
        }
    }

    fn last_modified(&self) -> Option<String> {
        let stamp = jiff::Timestamp::from_second(self.modified_secs?).ok()?;
        jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&stamp)
            .ok()
    }
}

/// What to send for a file of `length` bytes with `validators`, given the request's headers.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Decision {
    /// 304: the client's copy is current.
    NotModified,
    /// 412: a precondition (`If-Match`, `If-Unmodified-Since`) failed.
    PreconditionFailed,
    /// 416: the range is beyond the end.
    RangeNotSatisfiable,
    /// 200 with the whole file.
    Whole,
    /// 206 with bytes `start..=end`.
    Part { start: u64, end: u64 },
}

/// RFC 9110 §13.2.2's order: If-Match, else If-Unmodified-Since; If-None-Match, else
/// If-Modified-Since; then Range, if If-Range (when given) still holds.
pub(super) fn decide(
    request: &HeaderMap,
    validators: &Validators,
    length: u64,
    ranges: bool,
) -> Decision {
    let text = |name: header::HeaderName| request.get(name).and_then(|v| v.to_str().ok());
    if let Some(wanted) = text(header::IF_MATCH) {
        if !any_matches(wanted, &validators.etag, false) {
            return Decision::PreconditionFailed;
        }
    } else if let Some(date) = text(header::IF_UNMODIFIED_SINCE).and_then(http_date) {
        if validators.modified_secs.is_some_and(|m| m > date) {
            return Decision::PreconditionFailed;
        }
    }
    if let Some(wanted) = text(header::IF_NONE_MATCH) {
        if any_matches(wanted, &validators.etag, true) {
            return Decision::NotModified;
        }
    } else if let Some(date) = text(header::IF_MODIFIED_SINCE).and_then(http_date) {
        if validators.modified_secs.is_some_and(|m| m <= date) {
            return Decision::NotModified;
        }
    }
    // Range is for GET (RFC 9110 §14.2), and an empty file has no byte to choose.
    let Some(range) = text(header::RANGE).filter(|_| ranges && length > 0) else {
        return Decision::Whole;
    };
    // A range asked for a copy that changed since is answered with the whole new file.
    if let Some(condition) = text(header::IF_RANGE) {
        let condition = condition.trim();
        // An entity tag (`"x"`, or a weak `W/"x"`, which never holds), else a date.
        let holds = match condition.starts_with('"') || condition.starts_with("W/") {
            true => condition == validators.etag,
            false => http_date(condition) == validators.modified_secs,
        };
        if !holds {
            return Decision::Whole;
        }
    }
    match one_range(range, length) {
        Some(Ok((start, end))) => Decision::Part { start, end },
        Some(Err(())) => Decision::RangeNotSatisfiable,
        // Not one byte range (several, or another unit): the whole file, as RFC 9110 allows.
        None => Decision::Whole,
    }
}

/// Whether the list in an `If-Match`/`If-None-Match` header names `etag` (or is `*`). `weak`:
/// `W/"x"` matches `"x"` (If-None-Match's weak comparison).
fn any_matches(list: &str, etag: &str, weak: bool) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag == etag || (weak && tag.strip_prefix("W/") == Some(etag)))
}

/// An HTTP date (`Wed, 25 Nov 2026 00:25:24 GMT`) in seconds since the epoch.
fn http_date(text: &str) -> Option<i64> {
    jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(text.trim())
        .ok()
        .map(|t| t.as_second())
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` against a file of `length` bytes: the inclusive range,
/// `Err` when it starts beyond the end, `None` when it is not a single byte range.
fn one_range(header: &str, length: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = header.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        let suffix: u64 = last.parse().ok()?;
        if suffix == 0 || length == 0 {
            return Some(Err(()));
        }
        (length.saturating_sub(suffix), length - 1)
    } else {
        let start: u64 = first.parse().ok()?;
        let end = match last {
            "" => length.saturating_sub(1),
            last => last.parse::<u64>().ok()?.min(length.saturating_sub(1)),
        };
        if start >= length {
            return Some(Err(()));
        }
        if end < start {
            return None;
        }
        (start, end)
    };
    Some(Ok(range))
}

/// The response's status, headers and (unless HEAD or nothing to send) body for `file`.
pub(super) async fn respond(
    file: tokio::fs::File,
    meta: &Metadata,
    request: &HeaderMap,
    head: bool,
    content_type: &'static str,
) -> std::io::Result<(StatusCode, HeaderMap, Option<FileBody>)> {
    let length = meta.len();
    let validators = Validators::of(meta);
    let mut headers = HeaderMap::new();
    if let Ok(etag) = HeaderValue::from_str(&validators.etag) {
        headers.insert(header::ETAG, etag);
    }
    if let Some(date) = validators
        .last_modified()
        .and_then(|d| HeaderValue::from_str(&d).ok())
    {
        headers.insert(header::LAST_MODIFIED, date);
    }
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let (status, start, count) = match decide(request, &validators, length, !head) {
        Decision::NotModified => return Ok((StatusCode::NOT_MODIFIED, headers, None)),
        Decision::PreconditionFailed => {
            return Ok((StatusCode::PRECONDITION_FAILED, headers, None));
        }
        Decision::RangeNotSatisfiable => {
            if let Ok(value) = format!("bytes */{length}").parse() {
                headers.insert(header::CONTENT_RANGE, value);
            }
            return Ok((StatusCode::RANGE_NOT_SATISFIABLE, headers, None));
        }
        Decision::Whole => (StatusCode::OK, 0, length),
        Decision::Part { start, end } => {
            if let Ok(value) = format!("bytes {start}-{end}/{length}").parse() {
                headers.insert(header::CONTENT_RANGE, value);
            }
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
    };
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    if head {
        return Ok((status, headers, None));
    }
    let mut file = file;
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start)).await?;
    }
    Ok((status, headers, Some(FileBody::new(file, count))))
}

/// `remaining` bytes of a file, read a chunk at a time as the connection takes them.
pub(super) struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
    /// The chunk being read: kept across the polls that wait for the read, given away (frozen)
    /// once filled, since hyper owns it until written.
    chunk: BytesMut,
}

impl FileBody {
    fn new(file: tokio::fs::File, remaining: u64) -> FileBody {
        FileBody {
            file,
            remaining,
            chunk: BytesMut::new(),
        }
    }
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(this.remaining).map_or(CHUNK, |left| left.min(CHUNK));
        if this.chunk.len() < want {
            this.chunk = BytesMut::zeroed(want);
        }
        let mut read = ReadBuf::new(&mut this.chunk[..want]);
        match Pin::new(&mut this.file).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) => {
                let got = read.filled().len();
                if got == 0 {
                    // The file shrank under us: the promised length cannot be sent.
                    return Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file became shorter while it was sent",
                    ))));
                }
                this.remaining -= got as u64;
                let filled = this.chunk.split_to(got);
                Poll::Ready(Some(Ok(Frame::data(filled.freeze()))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validators() -> Validators {
        Validators {
            etag: "\"6b062af4.2f1655cc-13\"".into(),
            // Wed, 25 Nov 2026 00:25:24 GMT
            modified_secs: Some(1_795_566_324),
        }
    }

    fn with(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().expect("header value"));
        }
        map
    }

    #[test]
    fn the_date_printed_is_the_date_read() {
        let v = validators();
        let printed = v.last_modified().expect("a date");
        assert_eq!(printed, "Wed, 25 Nov 2026 00:25:24 GMT");
        assert_eq!(http_date(&printed), v.modified_secs);
    }

    #[test]
    fn conditional_requests_follow_rfc_9110s_order() {
        let v = validators();
        let etag = v.etag.clone();
        let decide = |pairs: &[(&'static str, &str)]| decide(&with(pairs), &v, 100, true);
        assert_eq!(decide(&[]), Decision::Whole);
        assert_eq!(decide(&[("if-none-match", &etag)]), Decision::NotModified);
        assert_eq!(decide(&[("if-none-match", "*")]), Decision::NotModified);
        let weak = format!("\"other\", W/{etag}");
        assert_eq!(decide(&[("if-none-match", &weak)]), Decision::NotModified);
        assert_eq!(decide(&[("if-none-match", "\"other\"")]), Decision::Whole);
        let same = "Wed, 25 Nov 2026 00:25:24 GMT";
        let before = "Wed, 25 Nov 2026 00:25:23 GMT";
        assert_eq!(
            decide(&[("if-modified-since", same)]),
            Decision::NotModified
        );
        assert_eq!(decide(&[("if-modified-since", before)]), Decision::Whole);
        // If-None-Match wins over If-Modified-Since.
        assert_eq!(
            decide(&[("if-none-match", "\"other\""), ("if-modified-since", same)]),
            Decision::Whole
        );
        assert_eq!(
            decide(&[("if-match", "\"other\"")]),
            Decision::PreconditionFailed
        );
        assert_eq!(decide(&[("if-match", &etag)]), Decision::Whole);
        assert_eq!(
            decide(&[("if-unmodified-since", before)]),
            Decision::PreconditionFailed
        );
        assert_eq!(decide(&[("if-unmodified-since", same)]), Decision::Whole);
    }

    #[test]
    fn one_byte_range_is_served_and_others_get_the_whole_file() {
        let v = validators();
        let head_or_empty = [
            super::decide(&with(&[("range", "bytes=0-9")]), &v, 100, false),
            super::decide(&with(&[("range", "bytes=-5")]), &v, 0, true),
        ];
        assert_eq!(head_or_empty, [Decision::Whole, Decision::Whole]);
        let decide = |pairs: &[(&'static str, &str)]| decide(&with(pairs), &v, 100, true);
        let part = |start, end| Decision::Part { start, end };
        assert_eq!(decide(&[("range", "bytes=0-9")]), part(0, 9));
        assert_eq!(decide(&[("range", "bytes=90-")]), part(90, 99));
        assert_eq!(decide(&[("range", "bytes=-5")]), part(95, 99));
        assert_eq!(decide(&[("range", "bytes=-500")]), part(0, 99));
        assert_eq!(decide(&[("range", "bytes=50-500")]), part(50, 99));
        assert_eq!(
            decide(&[("range", "bytes=100-")]),
            Decision::RangeNotSatisfiable
        );
        assert_eq!(
            decide(&[("range", "bytes=-0")]),
            Decision::RangeNotSatisfiable
        );
        assert_eq!(decide(&[("range", "bytes=0-1,5-6")]), Decision::Whole);
        assert_eq!(decide(&[("range", "items=0-1")]), Decision::Whole);
        assert_eq!(decide(&[("range", "bytes=9-3")]), Decision::Whole);
        // If-Range: the part only while the client's copy is current.
        let etag = v.etag.clone();
        assert_eq!(
            decide(&[("range", "bytes=0-9"), ("if-range", &etag)]),
            part(0, 9)
        );
        assert_eq!(
            decide(&[("range", "bytes=0-9"), ("if-range", "\"old\"")]),
            Decision::Whole
        );
        assert_eq!(
            decide(&[
                ("range", "bytes=0-9"),
                ("if-range", "Wed, 25 Nov 2026 00:25:24 GMT")
            ]),
            part(0, 9)
        );
    }
}
