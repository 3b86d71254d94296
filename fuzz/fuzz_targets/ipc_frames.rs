//! Any bytes arriving on the socket: frames are read until the bytes run out, each body is
//! decoded as each message type, and what decodes encodes back to the same message.
#![no_main]

use kelpie_proto::{decode, encode, read_frame, Hello, Request, Response, MAX_FRAME_LEN};

fn round_trip<T>(body: &[u8])
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    if let Ok(message) = decode::<T>(body) {
        let frame = encode(&message).expect("a decoded message encodes");
        let again: T = decode(&frame[4..]).expect("an encoded message decodes");
        assert_eq!(again, message);
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut reader = data;
    while let Ok(body) = read_frame(&mut reader) {
        assert!(body.len() <= MAX_FRAME_LEN);
        round_trip::<Hello>(&body);
        round_trip::<Request>(&body);
        round_trip::<Response>(&body);
    }
    // The whole input as one body too, so the decoder sees it without a length prefix.
    round_trip::<Request>(data);
    round_trip::<Response>(data);
});
