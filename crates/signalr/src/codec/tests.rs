//! Codec tests: the wire examples of `signalr-protocol.md` §9, malformed input, proptests.

use proptest::prelude::*;
use serde_json::json;

use super::*;

/// Decodes every record of one WS message, as a receiver would.
fn decode_frame(frame: &str) -> Vec<Result<Decoded, CodecError>> {
    let mut decoder = FrameDecoder::new(None);
    decoder.push(frame.as_bytes());
    let mut decoded = Vec::new();
    while let Some(record) = decoder.next_record() {
        decoded.push(record.and_then(decode));
    }
    decoded
}

fn message(frame: &str) -> Message {
    match decode_frame(frame).as_slice() {
        [Ok(Decoded::Message(message))] => message.clone(),
        other => panic!("expected one message, got {other:?}"),
    }
}

fn invocation(id: Option<&str>, target: &str, arguments: Vec<Value>) -> Message {
    Message::Invocation {
        invocation_id: id.map(str::to_owned),
        target: target.to_owned(),
        arguments,
        stream_ids: Vec::new(),
    }
}

fn completion(id: &str, outcome: Outcome) -> Message {
    Message::Completion {
        invocation_id: id.to_owned(),
        outcome,
    }
}

#[test]
fn handshake_request_and_responses() {
    let request = JSON_HANDSHAKE_REQUEST
        .strip_suffix('\u{1e}')
        .expect("separator");
    assert_eq!(
        decode_handshake_request(request.as_bytes()),
        Ok(HandshakeRequest {
            protocol: "json".to_owned(),
            version: 1
        })
    );
    assert_eq!(encode_handshake_response(None), "{}\u{1e}");
    assert_eq!(decode_handshake_response(b"{}"), Ok(Ok(())));
    let refusal = encode_handshake_response(Some("The protocol 'xml' is not supported."));
    assert_eq!(
        refusal,
        "{\"error\":\"The protocol 'xml' is not supported.\"}\u{1e}"
    );
    assert_eq!(
        decode_handshake_response(refusal.trim_end_matches('\u{1e}').as_bytes()),
        Ok(Err("The protocol 'xml' is not supported.".to_owned()))
    );
    assert!(matches!(
        decode_handshake_response(br#"{"type":6}"#),
        Err(CodecError::InvalidHandshake(_))
    ));
}

#[test]
fn handshake_response_sharing_a_frame_with_a_message() {
    let mut decoder = FrameDecoder::new(None);
    decoder.push(b"{}\x1e{\"type\":1,\"target\":\"Welcome\",\"arguments\":[]}\x1e");
    let handshake = decoder.next_record().expect("record").expect("valid");
    assert_eq!(decode_handshake_response(handshake), Ok(Ok(())));
    let welcome = decoder.next_record().expect("record").and_then(decode);
    assert_eq!(
        welcome,
        Ok(Decoded::Message(invocation(None, "Welcome", vec![])))
    );
    assert!(decoder.next_record().is_none());
}

#[test]
fn encodes_the_wire_examples() {
    assert_eq!(encode(&Message::Ping), "{\"type\":6}\u{1e}");
    assert_eq!(PING_RECORD, encode(&Message::Ping));
    assert_eq!(
        encode(&invocation(Some("0"), "Add", vec![json!(40), json!(2)])),
        "{\"type\":1,\"invocationId\":\"0\",\"target\":\"Add\",\"arguments\":[40,2]}\u{1e}"
    );
    assert_eq!(
        encode(&invocation(Some("1"), "Reset", vec![])),
        "{\"type\":1,\"invocationId\":\"1\",\"target\":\"Reset\",\"arguments\":[]}\u{1e}",
        "zero-argument invocations must still carry \"arguments\":[]"
    );
    assert_eq!(
        encode(&invocation(None, "Notify", vec![json!("hi")])),
        "{\"type\":1,\"target\":\"Notify\",\"arguments\":[\"hi\"]}\u{1e}"
    );
    assert_eq!(
        encode(&completion("1", Outcome::Value(Value::Null))),
        "{\"type\":3,\"invocationId\":\"1\",\"result\":null}\u{1e}"
    );
    assert_eq!(
        encode(&completion("3", Outcome::Empty)),
        "{\"type\":3,\"invocationId\":\"3\"}\u{1e}"
    );
    assert_eq!(
        encode(&completion(
            "7",
            Outcome::Error("Client didn't provide a result.".to_owned())
        )),
        "{\"type\":3,\"invocationId\":\"7\",\"error\":\"Client didn't provide a result.\"}\u{1e}"
    );
    assert_eq!(
        encode(&Message::StreamInvocation {
            invocation_id: "3".to_owned(),
            target: "Counter".to_owned(),
            arguments: vec![json!(3), json!(10)],
            stream_ids: Vec::new(),
        }),
        "{\"type\":4,\"invocationId\":\"3\",\"target\":\"Counter\",\"arguments\":[3,10]}\u{1e}"
    );
    assert_eq!(
        encode(&Message::CancelInvocation {
            invocation_id: "3".to_owned()
        }),
        "{\"type\":5,\"invocationId\":\"3\"}\u{1e}"
    );
    assert_eq!(
        encode(&Message::Close {
            error: None,
            allow_reconnect: false
        }),
        "{\"type\":7}\u{1e}"
    );
    assert_eq!(
        encode(&Message::Close {
            error: Some("Connection closed with an error.".to_owned()),
            allow_reconnect: true
        }),
        "{\"type\":7,\"error\":\"Connection closed with an error.\",\"allowReconnect\":true}\u{1e}"
    );
}

#[test]
fn decodes_completions() {
    assert_eq!(
        message("{\"type\":3,\"invocationId\":\"0\",\"result\":42}\x1e"),
        completion("0", Outcome::Value(json!(42)))
    );
    assert_eq!(
        message("{\"type\":3,\"invocationId\":\"1\",\"result\":null}\x1e"),
        completion("1", Outcome::Value(Value::Null)),
        "a null result is a success"
    );
    assert_eq!(
        message("{\"type\":3,\"invocationId\":\"1\"}\x1e"),
        completion("1", Outcome::Empty),
        "a missing result is a success"
    );
    assert_eq!(
        message("{\"type\":3,\"invocationId\":\"9\",\"error\":\"Unknown hub method 'Nope'\"}\x1e"),
        completion("9", Outcome::Error("Unknown hub method 'Nope'".to_owned()))
    );
}

#[test]
fn decodes_streams_and_server_messages() {
    assert_eq!(
        message("{\"type\":2,\"invocationId\":\"3\",\"item\":null}\x1e"),
        Message::StreamItem {
            invocation_id: "3".to_owned(),
            item: Value::Null
        }
    );
    assert_eq!(
        message(
            "{\"type\":7,\"error\":\"Connection closed with an error.\",\"allowReconnect\":true}\x1e"
        ),
        Message::Close {
            error: Some("Connection closed with an error.".to_owned()),
            allow_reconnect: true
        }
    );
    assert_eq!(
        message("{\"type\":1,\"invocationId\":\"7\",\"target\":\"GetValue\",\"arguments\":[]}\x1e"),
        invocation(Some("7"), "GetValue", vec![])
    );
    assert_eq!(
        message(
            "{\"type\":1,\"invocationId\":\"4\",\"target\":\"Sum\",\"arguments\":[],\"streamIds\":[\"5\"]}\x1e"
        ),
        Message::Invocation {
            invocation_id: Some("4".to_owned()),
            target: "Sum".to_owned(),
            arguments: vec![],
            stream_ids: vec!["5".to_owned()],
        }
    );
}

#[test]
fn headers_unknown_fields_and_unknown_types_are_ignored() {
    assert_eq!(
        message(
            "{\"type\":1,\"headers\":{\"Foo\":\"Bar\"},\"target\":\"Send\",\"arguments\":[42],\"extra\":true}\x1e"
        ),
        invocation(None, "Send", vec![json!(42)])
    );
    assert_eq!(
        decode_frame(
            "{\"type\":99,\"anything\":1}\x1e{\"type\":8,\"sequenceId\":3}\x1e{\"type\":99,\"target\":5}\x1e"
        ),
        vec![
            Ok(Decoded::Ignored { kind: 99 }),
            Ok(Decoded::Ignored { kind: 8 }),
            Ok(Decoded::Ignored { kind: 99 }),
        ]
    );
}

#[test]
fn two_messages_in_one_frame_come_out_in_order() {
    assert_eq!(
        decode_frame(
            "{\"type\":1,\"target\":\"A\",\"arguments\":[1]}\x1e{\"type\":1,\"target\":\"B\",\"arguments\":[2]}\x1e"
        ),
        vec![
            Ok(Decoded::Message(invocation(None, "A", vec![json!(1)]))),
            Ok(Decoded::Message(invocation(None, "B", vec![json!(2)]))),
        ]
    );
}

#[test]
fn malformed_records_are_typed_errors_and_do_not_stop_the_frame() {
    let frame = concat!(
        "not json\x1e",
        "{\"target\":\"A\",\"arguments\":[]}\x1e",
        "{\"type\":1,\"invocationId\":\"5\",\"target\":\"Reset\"}\x1e",
        "{\"type\":3,\"invocationId\":\"0\",\"result\":1,\"error\":\"x\"}\x1e",
        "{\"type\":2,\"invocationId\":\"3\"}\x1e",
        "{\"type\":1,\"target\":5,\"arguments\":[]}\x1e",
        "[1,2]\x1e",
        "\x1e",
        "{\"type\":6}\x1e",
    );
    let decoded = decode_frame(frame);
    assert_eq!(decoded.len(), 9);
    assert!(matches!(decoded[0], Err(CodecError::InvalidJson(_))));
    assert_eq!(decoded[1], Err(CodecError::MissingType));
    assert_eq!(
        decoded[2],
        Err(CodecError::MissingField {
            kind: 1,
            field: "arguments",
            invocation_id: Some("5".to_owned())
        })
    );
    assert_eq!(
        decoded[3],
        Err(CodecError::ConflictingCompletion {
            invocation_id: "0".to_owned()
        })
    );
    assert_eq!(
        decoded[3]
            .as_ref()
            .err()
            .and_then(CodecError::invocation_id),
        Some("0")
    );
    assert!(matches!(
        decoded[4],
        Err(CodecError::MissingField {
            kind: 2,
            field: "item",
            ..
        })
    ));
    assert!(matches!(decoded[5], Err(CodecError::InvalidJson(_))));
    assert!(matches!(decoded[6], Err(CodecError::InvalidJson(_))));
    assert!(matches!(decoded[7], Err(CodecError::InvalidJson(_))));
    assert_eq!(decoded[8], Ok(Decoded::Message(Message::Ping)));
}

#[test]
fn a_partial_record_waits_for_the_next_payload() {
    let mut decoder = FrameDecoder::new(None);
    decoder.push(b"{\"type\":6}\x1e{\"type\":1,\"target\":");
    assert_eq!(
        decoder.next_record().map(|r| r.map(<[u8]>::to_vec)),
        Some(Ok(b"{\"type\":6}".to_vec()))
    );
    assert!(decoder.next_record().is_none());
    assert_eq!(decoder.partial_len(), "{\"type\":1,\"target\":".len());
    decoder.push(b"\"A\",\"arguments\":[]}\x1e");
    let record = decoder.next_record().expect("completed record");
    assert_eq!(
        record.and_then(decode),
        Ok(Decoded::Message(invocation(None, "A", vec![])))
    );
    assert_eq!(decoder.partial_len(), 0);
}

#[test]
fn oversized_records_are_rejected_and_the_next_one_still_decodes() {
    let mut decoder = FrameDecoder::new(Some(16));
    decoder.push(b"{\"type\":1,\"target\":\"Big\",\"arguments\":[]}\x1e{\"type\":6}\x1e");
    assert!(matches!(
        decoder.next_record(),
        Some(Err(CodecError::RecordTooLarge { limit: 16, .. }))
    ));
    assert_eq!(
        decoder.next_record().map(|r| r.and_then(decode)),
        Some(Ok(Decoded::Message(Message::Ping)))
    );

    // A partial record that already exceeds the limit is rejected without waiting for its end.
    decoder.push(&[b'x'; 40]);
    assert!(matches!(
        decoder.next_record(),
        Some(Err(CodecError::RecordTooLarge {
            size: 40,
            limit: 16
        }))
    ));
    assert_eq!(decoder.partial_len(), 0);
}

#[test]
fn a_record_exactly_at_the_limit_passes() {
    let record = "{\"type\":6}\x1e";
    let mut decoder = FrameDecoder::new(Some(record.len()));
    decoder.push(record.as_bytes());
    assert!(matches!(decoder.next_record(), Some(Ok(_))));
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[ -~\u{1e}\u{e9}\u{1F600}]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn text() -> impl Strategy<Value = String> {
    "[ -~\u{1e}\u{e9}]{0,10}"
}

fn any_message() -> impl Strategy<Value = Message> {
    let arguments = || prop::collection::vec(json_value(), 0..3);
    let ids = || prop::collection::vec(text(), 0..2);
    prop_oneof![
        (prop::option::of(text()), text(), arguments(), ids()).prop_map(
            |(invocation_id, target, arguments, stream_ids)| Message::Invocation {
                invocation_id,
                target,
                arguments,
                stream_ids
            }
        ),
        (text(), json_value()).prop_map(|(invocation_id, item)| Message::StreamItem {
            invocation_id,
            item
        }),
        (
            text(),
            prop_oneof![
                Just(Outcome::Empty),
                json_value().prop_map(Outcome::Value),
                text().prop_map(Outcome::Error),
            ]
        )
            .prop_map(|(invocation_id, outcome)| Message::Completion {
                invocation_id,
                outcome
            }),
        (text(), text(), arguments(), ids()).prop_map(
            |(invocation_id, target, arguments, stream_ids)| Message::StreamInvocation {
                invocation_id,
                target,
                arguments,
                stream_ids
            }
        ),
        text().prop_map(|invocation_id| Message::CancelInvocation { invocation_id }),
        Just(Message::Ping),
        (prop::option::of(text()), any::<bool>()).prop_map(|(error, allow_reconnect)| {
            Message::Close {
                error,
                allow_reconnect,
            }
        }),
    ]
}

/// Cuts `bytes` at the given (sorted, deduplicated) positions.
fn chunks(bytes: &[u8], mut cuts: Vec<usize>) -> Vec<&[u8]> {
    cuts.retain(|&cut| cut < bytes.len());
    cuts.sort_unstable();
    cuts.dedup();
    let mut pieces = Vec::new();
    let mut start = 0;
    for cut in cuts {
        pieces.push(&bytes[start..cut]);
        start = cut;
    }
    pieces.push(&bytes[start..]);
    pieces
}

proptest! {
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn arbitrary_bytes_in_arbitrary_pieces_never_panic(
        bytes in prop::collection::vec(
            prop_oneof![Just(RECORD_SEPARATOR), Just(b'{'), Just(b'"'), any::<u8>()],
            0..512,
        ),
        cuts in prop::collection::vec(0usize..512, 0..8),
        limit in prop::option::of(1usize..64),
    ) {
        let mut decoder = FrameDecoder::new(limit);
        for piece in chunks(&bytes, cuts) {
            decoder.push(piece);
            while let Some(record) = decoder.next_record() {
                let _ = record.and_then(decode);
            }
        }
        let _ = decode(&bytes);
        let _ = decode_handshake_response(&bytes);
        let _ = decode_handshake_request(&bytes);
    }

    #[test]
    fn encoded_messages_decode_back_in_order_whatever_the_framing(
        messages in prop::collection::vec(any_message(), 1..6),
        cuts in prop::collection::vec(0usize..2048, 0..8),
    ) {
        let wire: String = messages.iter().map(encode).collect();
        let mut decoder = FrameDecoder::new(None);
        let mut decoded = Vec::new();
        for piece in chunks(wire.as_bytes(), cuts) {
            decoder.push(piece);
            while let Some(record) = decoder.next_record() {
                decoded.push(record.and_then(decode));
            }
        }
        let expected: Vec<_> = messages.into_iter().map(|m| Ok(Decoded::Message(m))).collect();
        prop_assert_eq!(decoded, expected);
        prop_assert_eq!(decoder.partial_len(), 0);
    }
}
