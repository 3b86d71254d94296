//! Property tests of the framing and the decoder: whatever bytes arrive on the socket, reading
//! and decoding them ends (no hang on a finite reader), never panics, and never allocates more
//! than [`MAX_FRAME_LEN`] for one frame. The fuzz targets in `fuzz/` run the same entry points
//! for longer.

use kelpie_proto::{
    decode, encode, read_frame, write_frame, ConfRequest, ErrorKind, FrameError, Hello, LogBytes,
    LogStream, Request, Response, ScaleCount, Target, WireError, WireLogLine, MAX_FRAME_LEN,
};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::io::Read;

/// A reader that hands out `data` and counts what was asked of it, so a test can tell that a
/// refused frame's body was never read (nor, therefore, allocated for).
struct Counting<'a> {
    data: &'a [u8],
    requested: usize,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.requested += buf.len();
        self.data.read(buf)
    }
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        Just(Target::All),
        any::<u32>().prop_map(Target::Id),
        any::<String>().prop_map(Target::Name),
        any::<String>().prop_map(Target::Pattern),
        (any::<String>(), any::<String>())
            .prop_map(|(name, script)| Target::NameOrScript { name, script }),
    ]
}

fn targets() -> impl Strategy<Value = Vec<Target>> {
    prop::collection::vec(target(), 0..4)
}

fn env() -> impl Strategy<Value = Option<BTreeMap<String, String>>> {
    prop::option::of(prop::collection::btree_map(
        any::<String>(),
        any::<String>(),
        0..4,
    ))
}

/// Every request that does not carry an `AppSpec` (those are covered by the config tests).
fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        Just(Request::Ping),
        Just(Request::List),
        Just(Request::Resurrect),
        Just(Request::Kill),
        Just(Request::Shutdown),
        Just(Request::ReloadLogs),
        Just(Request::Conf(ConfRequest::Get)),
        any::<String>().prop_map(|key| Request::Conf(ConfRequest::Unset { key })),
        prop::collection::vec((any::<String>(), any::<String>()), 0..4)
            .prop_map(|pairs| Request::Conf(ConfRequest::Set { pairs })),
        targets().prop_map(|targets| Request::Stop(kelpie_proto::Targets { targets })),
        targets().prop_map(|targets| Request::Delete(kelpie_proto::Targets { targets })),
        targets().prop_map(|targets| Request::Reset(kelpie_proto::Targets { targets })),
        targets().prop_map(|targets| Request::Flush(kelpie_proto::FlushRequest {
            targets,
            deleted: false,
        })),
        (targets(), env()).prop_map(|(targets, update_env)| Request::Restart(
            kelpie_proto::RestartRequest {
                targets,
                update_env
            }
        )),
        (targets(), env(), any::<u32>()).prop_map(|(targets, update_env, parallel)| {
            Request::Reload(kelpie_proto::ReloadRequest {
                targets,
                apps: Vec::new(),
                update_env,
                parallel,
            })
        }),
        (
            any::<String>(),
            prop_oneof![
                any::<u32>().prop_map(ScaleCount::To),
                any::<u32>().prop_map(ScaleCount::Up),
                any::<u32>().prop_map(ScaleCount::Down),
            ]
        )
            .prop_map(|(name, count)| Request::Scale(kelpie_proto::ScaleRequest { name, count })),
        (any::<String>(), targets()).prop_map(|(signal, targets)| Request::Signal(
            kelpie_proto::SignalRequest { signal, targets }
        )),
        any::<bool>().prop_map(|force| Request::Save(kelpie_proto::SaveRequest { force })),
        (
            targets(),
            any::<u32>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(targets, lines, out, err, follow)| Request::Logs(
                kelpie_proto::LogsRequest {
                    targets,
                    lines,
                    out,
                    err,
                    follow,
                }
            )),
        (
            any::<Option<u16>>(),
            any::<Option<String>>(),
            any::<Option<String>>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(port, host, token, open_loopback, stop, show_token)| {
                Request::Web(kelpie_proto::WebRequest {
                    port,
                    host,
                    token,
                    open_loopback,
                    stop,
                    show_token,
                })
            }),
    ]
}

fn log_line() -> impl Strategy<Value = WireLogLine> {
    (
        any::<u32>(),
        any::<String>(),
        any::<bool>(),
        any::<Option<i64>>(),
        // Text and arbitrary bytes: not UTF-8 goes as base64.
        prop_oneof![
            any::<String>().prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..64),
        ],
    )
        .prop_map(|(pm_id, app_name, err, at_ms, bytes)| WireLogLine {
            pm_id,
            app_name,
            stream: if err { LogStream::Err } else { LogStream::Out },
            at_ms,
            bytes: LogBytes(bytes),
        })
}

/// Responses without a process list (those carry an `AppSpec`).
fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        (any::<u32>(), any::<String>(), any::<u64>()).prop_map(|(pid, version, uptime_ms)| {
            Response::Pong {
                pid,
                version,
                uptime_ms,
            }
        }),
        any::<String>().prop_map(Response::Done),
        (prop::collection::vec(log_line(), 0..4), any::<u64>())
            .prop_map(|(lines, skipped)| Response::LogLines { lines, skipped }),
        (
            prop_oneof![
                Just(ErrorKind::NotFound),
                Just(ErrorKind::Conflict),
                Just(ErrorKind::Invalid),
                Just(ErrorKind::Internal),
                Just(ErrorKind::VersionMismatch),
            ],
            any::<String>()
        )
            .prop_map(|(kind, message)| Response::Error(WireError { kind, message })),
    ]
}

/// JSON-looking text: far more likely than random bytes to get deep into the decoder.
fn jsonish() -> impl Strategy<Value = String> {
    prop_oneof![
        "[{}\\[\\]\":,0-9a-zA-Z_ \\-.eE\\\\]{0,200}",
        request().prop_map(|r| serde_json::to_string(&r).unwrap_or_default()),
        // A valid request with one byte changed.
        (request(), any::<prop::sample::Index>(), any::<char>()).prop_map(|(r, at, c)| {
            let mut text: Vec<char> = serde_json::to_string(&r)
                .unwrap_or_default()
                .chars()
                .collect();
            if !text.is_empty() {
                let i = at.index(text.len());
                text[i] = c;
            }
            text.into_iter().collect()
        }),
    ]
}

proptest! {
    #[test]
    fn requests_round_trip_through_frames(request in request()) {
        let mut wire = Vec::new();
        write_frame(&mut wire, &request).expect("write");
        let body = read_frame(&mut wire.as_slice()).expect("read");
        prop_assert_eq!(body.len() + 4, wire.len());
        prop_assert_eq!(decode::<Request>(&body).expect("decode"), request);
    }

    #[test]
    fn responses_round_trip_through_frames(response in response()) {
        let frame = encode(&response).expect("encode");
        let body = read_frame(&mut frame.as_slice()).expect("read");
        prop_assert_eq!(decode::<Response>(&body).expect("decode"), response);
    }

    #[test]
    fn frames_in_a_row_are_read_back_in_order(requests in prop::collection::vec(request(), 0..6)) {
        let mut wire = Vec::new();
        for request in &requests {
            write_frame(&mut wire, request).expect("write");
        }
        let mut reader = wire.as_slice();
        for request in &requests {
            let body = read_frame(&mut reader).expect("read");
            prop_assert_eq!(&decode::<Request>(&body).expect("decode"), request);
        }
        prop_assert!(reader.is_empty());
        // At the end of the stream: an error, not a hang or an empty frame.
        prop_assert!(matches!(read_frame(&mut reader), Err(FrameError::Io(_))));
    }

    #[test]
    fn a_truncated_frame_is_an_error(request in request(), cut in any::<prop::sample::Index>()) {
        let frame = encode(&request).expect("encode");
        let cut = cut.index(frame.len());
        match read_frame(&mut &frame[..cut]) {
            Err(FrameError::Io(e)) => {
                prop_assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
            }
            other => prop_assert!(false, "cut at {} of {}: {:?}", cut, frame.len(), other),
        }
    }

    #[test]
    fn an_oversized_length_is_refused_before_reading_the_body(
        len in (MAX_FRAME_LEN as u32 + 1)..=u32::MAX,
        tail in prop::collection::vec(any::<u8>(), 0..16),
    ) {
        let mut data = len.to_be_bytes().to_vec();
        data.extend_from_slice(&tail);
        let mut reader = Counting { data: &data, requested: 0 };
        prop_assert!(matches!(read_frame(&mut reader), Err(FrameError::TooLarge(n)) if n == len as usize));
        prop_assert_eq!(reader.requested, 4);
    }

    #[test]
    fn any_bytes_read_as_frames_end_without_panicking(data in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut reader = data.as_slice();
        // Each successful read consumes at least the 4-byte prefix, so this ends.
        while let Ok(body) = read_frame(&mut reader) {
            prop_assert!(body.len() <= MAX_FRAME_LEN);
            let _ = decode::<Hello>(&body);
            let _ = decode::<Request>(&body);
            let _ = decode::<Response>(&body);
        }
    }

    #[test]
    fn any_bytes_decode_to_a_value_or_an_error(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode::<Hello>(&body);
        let _ = decode::<Request>(&body);
        let _ = decode::<Response>(&body);
    }

    #[test]
    fn json_like_text_decodes_to_a_value_or_an_error(text in jsonish()) {
        let _ = decode::<Hello>(text.as_bytes());
        let _ = decode::<Request>(text.as_bytes());
        let _ = decode::<Response>(text.as_bytes());
    }

    #[test]
    fn scale_counts_parse_or_explain(text in any::<String>()) {
        if let Err(message) = ScaleCount::parse(&text) {
            prop_assert!(message.to_string().starts_with("expected N, +N or -N"));
        }
    }

    #[test]
    fn scale_counts_round_trip(n in any::<u32>()) {
        prop_assert_eq!(ScaleCount::parse(&n.to_string()), Ok(ScaleCount::To(n)));
        prop_assert_eq!(ScaleCount::parse(&format!("+{n}")), Ok(ScaleCount::Up(n)));
        prop_assert_eq!(ScaleCount::parse(&format!(" -{n} ")), Ok(ScaleCount::Down(n)));
    }
}

#[test]
fn a_four_gib_header_alone_is_refused_at_once() {
    let mut reader = Counting {
        data: &u32::MAX.to_be_bytes(),
        requested: 0,
    };
    let started = std::time::Instant::now();
    assert!(matches!(
        read_frame(&mut reader),
        Err(FrameError::TooLarge(n)) if n == u32::MAX as usize
    ));
    assert_eq!(reader.requested, 4);
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

#[test]
fn the_largest_frame_is_accepted_and_one_byte_more_is_not() {
    let mut frame = (MAX_FRAME_LEN as u32).to_be_bytes().to_vec();
    frame.resize(4 + MAX_FRAME_LEN, b' ');
    assert_eq!(
        read_frame(&mut frame.as_slice()).expect("read").len(),
        MAX_FRAME_LEN
    );
    // Encoding has the same limit: `{"Done":"…"}` is the text and 11 bytes.
    let text = "x".repeat(MAX_FRAME_LEN - 11);
    assert_eq!(
        encode(&Response::Done(text.clone())).expect("encode").len(),
        4 + MAX_FRAME_LEN
    );
    assert!(matches!(
        encode(&Response::Done(text + "x")),
        Err(FrameError::TooLarge(n)) if n == MAX_FRAME_LEN + 1
    ));
}

#[test]
fn deeply_nested_json_is_an_error_not_a_stack_overflow() {
    for open in ["[", "{\"a\":", "{\"Stop\":{\"targets\":"] {
        let body = open.repeat(100_000);
        assert!(decode::<Request>(body.as_bytes()).is_err());
        assert!(decode::<Response>(body.as_bytes()).is_err());
    }
}

/// An error kind added by a newer daemon reaches an older client as `Unknown`, with its
/// message, instead of making the whole answer unreadable.
#[test]
fn an_error_kind_newer_than_the_client_decodes_as_unknown() {
    let answer = br#"{"Error":{"kind":"SomethingNew","message":"why"}}"#;
    let decoded: Response = decode(answer).expect("decodes");
    assert_eq!(
        decoded,
        Response::Error(WireError {
            kind: ErrorKind::Unknown,
            message: "why".to_string()
        })
    );
}
