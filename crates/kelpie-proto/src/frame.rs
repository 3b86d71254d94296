//! Length-delimited JSON frames.

use serde::{de::DeserializeOwned, Serialize};
use std::io::{Read, Write};

/// Largest frame either side accepts (16 MiB): a list of thousands of apps fits, a corrupt or
/// hostile length prefix does not make us allocate gigabytes.
pub const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// Why a frame could not be read, written or decoded.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The socket failed or closed. The cause is the source, not repeated in the message: an
    /// error chain printed whole (the CLI's `{:#}`) would show it twice.
    #[error("connection error")]
    Io(#[from] std::io::Error),
    /// The length prefix is above [`MAX_FRAME_LEN`].
    #[error("frame of {0} bytes is larger than the limit of {MAX_FRAME_LEN}")]
    TooLarge(usize),
    /// The body is not the JSON we expected. The cause is in the message and is no source
    /// (so a chain shows it once): those who report it show this message alone.
    #[error("undecodable message: {0}")]
    Decode(serde_json::Error),
}

impl From<serde_json::Error> for FrameError {
    fn from(error: serde_json::Error) -> Self {
        FrameError::Decode(error)
    }
}

/// Serialize `value` into a complete frame (length prefix included).
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, FrameError> {
    let body = serde_json::to_vec(value)?;
    if body.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(body.len()));
    }
    let len = u32::try_from(body.len()).map_err(|_| FrameError::TooLarge(body.len()))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Decode a frame body (without its length prefix).
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    Ok(serde_json::from_slice(body)?)
}

/// Read one frame body from a blocking reader.
pub fn read_frame(reader: &mut impl Read) -> Result<Vec<u8>, FrameError> {
    let mut len = [0u8; 4];
    reader.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(len));
    }
    // Grown as the bytes arrive: a length prefix alone reserves nothing.
    let mut body = Vec::new();
    reader.take(len as u64).read_to_end(&mut body)?;
    if body.len() < len {
        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
    }
    Ok(body)
}

/// Write one value as a frame to a blocking writer.
pub fn write_frame<T: Serialize>(writer: &mut impl Write, value: &T) -> Result<(), FrameError> {
    writer.write_all(&encode(value)?)?;
    writer.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Hello, Request, Target};

    #[test]
    fn frames_round_trip() {
        let request = Request::Stop(crate::Targets {
            targets: vec![Target::Name("api".into()), Target::Id(3)],
        });
        let frame = encode(&request).expect("encode");
        let body = read_frame(&mut frame.as_slice()).expect("read");
        assert_eq!(decode::<Request>(&body).expect("decode"), request);
    }

    #[test]
    fn oversized_length_is_refused_before_allocating() {
        let mut frame = (u32::MAX).to_be_bytes().to_vec();
        frame.extend_from_slice(b"{}");
        assert!(matches!(
            read_frame(&mut frame.as_slice()),
            Err(FrameError::TooLarge(_))
        ));
    }

    #[test]
    fn hello_shape_is_stable() {
        // Every version of Kelpie must read every other version's Hello: this is that contract.
        let hello: Hello =
            decode(br#"{"protocol":1,"version":"0.1.0","extra":"ignored"}"#).expect("decode");
        assert_eq!(hello.protocol, 1);
        assert_eq!(hello.version, "0.1.0");
    }

    #[test]
    fn an_unknown_request_is_a_decode_error_not_a_panic() {
        assert!(decode::<Request>(br#"{"FutureThing":{}}"#).is_err());
        assert!(decode::<Request>(b"\xff\xfe").is_err());
    }

    /// The message of `error` and of each of its sources, joined as the CLI prints an error
    /// (anyhow's `{:#}`).
    fn chain(error: &dyn std::error::Error) -> String {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }

    #[test]
    fn an_error_names_its_cause_once() {
        // A daemon gone in the middle of the length prefix, then of the body.
        let cut = read_frame(&mut &[0u8, 0][..]).expect_err("cut in the prefix");
        assert_eq!(chain(&cut), "connection error: failed to fill whole buffer");
        let cut = read_frame(&mut &[0u8, 0, 0, 9, b'{'][..]).expect_err("cut in the body");
        assert_eq!(chain(&cut), "connection error: unexpected end of file");
        let json = serde_json::from_slice::<Request>(b"{").expect_err("not JSON");
        let bad = decode::<Request>(b"{").expect_err("not JSON");
        assert_eq!(chain(&bad), format!("undecodable message: {json}"));
    }
}
