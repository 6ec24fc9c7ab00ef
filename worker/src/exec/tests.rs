//! The exec framings without processes: requests and replies in both framings, the
//! MessagePack ↔ JSON mapping, and malformed replies.

use std::io::Cursor;

use super::framing::{msgpack_to_json, Framing, ReadError, Reply, MAX_MESSAGE};
use super::{ExecConfig, ExecError};

fn packed(value: &serde_json::Value) -> Vec<u8> {
    rmp_serde::to_vec(value).unwrap()
}

fn request(framing: Framing, id: u64, job_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    framing
        .encode_request(id, job_type, payload, &mut out)
        .unwrap();
    out
}

/// PROTOCOL.md §11's example exchange, MessagePack framing: unit 42 of `noop` with the
/// payload 5.
#[test]
fn the_msgpack_example_bytes_of_protocol_md_hold() {
    let sent = request(Framing::MessagePack, 42, "noop", b"\x05");
    let expected: Vec<u8> = [
        &[0x00, 0x00, 0x00, 0x1e, 0x83][..],
        b"\xa2id\x2a",
        b"\xa8job_type\xa4noop",
        b"\xa7payload\xc4\x01\x05",
    ]
    .concat();
    assert_eq!(sent, expected);
    let answer: Vec<u8> = [&b"\x83\xa2id\x2a\xa2ok\xc3\xa6output\xc4\x01\x05"[..]].concat();
    assert_eq!(answer.len(), 0x13);
    let mut stream = Cursor::new([&[0, 0, 0, 0x13][..], &answer].concat());
    let message = Framing::MessagePack
        .read_message(&mut stream)
        .unwrap()
        .unwrap();
    assert_eq!(
        Framing::MessagePack.decode_reply(&message),
        Ok(Reply {
            id: 42,
            outcome: Ok(vec![5])
        })
    );
    assert!(Framing::MessagePack
        .read_message(&mut stream)
        .unwrap()
        .is_none());
    // A failure: {"id": 42, "ok": false, "error": "boom"}.
    let failed = b"\x83\xa2id\x2a\xa2ok\xc2\xa5error\xa4boom";
    assert_eq!(
        Framing::MessagePack.decode_reply(failed),
        Ok(Reply {
            id: 42,
            outcome: Err("boom".into())
        })
    );
}

/// PROTOCOL.md §11's example exchange, JSON framing.
#[test]
fn the_json_example_bytes_of_protocol_md_hold() {
    let sent = request(Framing::Json, 42, "noop", b"\x05");
    assert_eq!(sent, b"{\"id\":42,\"job_type\":\"noop\",\"input\":5}\n");
    let mut stream =
        Cursor::new(&b"{\"id\": 42, \"output\": 5}\n{\"id\":43,\"error\":\"boom\"}\r\n"[..]);
    let first = Framing::Json.read_message(&mut stream).unwrap().unwrap();
    assert_eq!(
        Framing::Json.decode_reply(&first),
        Ok(Reply {
            id: 42,
            outcome: Ok(vec![5])
        })
    );
    let second = Framing::Json.read_message(&mut stream).unwrap().unwrap();
    assert_eq!(
        Framing::Json.decode_reply(&second),
        Ok(Reply {
            id: 43,
            outcome: Err("boom".into())
        })
    );
    assert!(Framing::Json.read_message(&mut stream).unwrap().is_none());
}

#[test]
fn json_conversion_keeps_map_order_integers_and_floats_both_ways() {
    // Built by hand so the key order is not serde_json's (sorted).
    let mut payload = vec![0x84];
    payload.extend(b"\xa1z\x2a"); // "z": 42
    payload.extend(b"\xa1a\xd0\xf6"); // "a": -10 as int 8
    payload.extend(b"\xa1x\xcb\x40\x04\x00\x00\x00\x00\x00\x00"); // "x": 2.5
    payload.extend(b"\xa1l\x94\xc0\xc3\xa2\xc3\xa9\xcb\x40\x00\x00\x00\x00\x00\x00\x00"); // [nil, true, "é", 2.0]
    let json = msgpack_to_json(&payload).unwrap();
    assert_eq!(json, r#"{"z":42,"a":-10,"x":2.5,"l":[null,true,"é",2.0]}"#);

    // Back: the same value comes back in the smallest encodings, floats as float 64.
    let line = format!("{{\"id\":1,\"output\":{json}}}");
    let reply = Framing::Json.decode_reply(line.as_bytes()).unwrap();
    let mut canonical = vec![0x84];
    canonical.extend(b"\xa1z\x2a\xa1a\xf6");
    canonical.extend(b"\xa1x\xcb\x40\x04\x00\x00\x00\x00\x00\x00");
    canonical.extend(b"\xa1l\x94\xc0\xc3\xa2\xc3\xa9\xcb\x40\x00\x00\x00\x00\x00\x00\x00");
    assert_eq!(reply.outcome, Ok(canonical));

    // Canonical MessagePack survives the round trip byte for byte.
    let value = serde_json::json!({"n": u64::MAX, "m": i64::MIN, "f": 1e300, "s": "a\nb\"c"});
    let bytes = packed(&value);
    let json = msgpack_to_json(&bytes).unwrap();
    assert!(
        !json.contains('\n'),
        "a newline inside a string is escaped: {json}"
    );
    let line = format!("{{\"id\":1,\"output\":{json}}}");
    let reply = Framing::Json.decode_reply(line.as_bytes()).unwrap();
    assert_eq!(reply.outcome, Ok(bytes));

    // An exponent makes a float; `null` is an output (nil), not a missing one.
    let reply = Framing::Json
        .decode_reply(b"{\"id\":1,\"output\":1e2}")
        .unwrap();
    assert_eq!(reply.outcome, Ok(packed(&serde_json::json!(100.0))));
    let reply = Framing::Json
        .decode_reply(b"{\"id\":1,\"output\":null}")
        .unwrap();
    assert_eq!(reply.outcome, Ok(vec![0xc0]));
    // A float 32 arrives as its float 64 value.
    assert_eq!(msgpack_to_json(b"\xca\x3f\xc0\x00\x00").unwrap(), "1.5");
}

#[test]
fn payloads_json_cannot_carry_fail_the_unit_saying_why() {
    let cases: [(&[u8], &str); 8] = [
        (b"\xc4\x01\x05", "binary data"),
        (b"\xd4\x01\x00", "extension type"),
        (b"\x81\x01\x02", "key that is not a string"),
        (b"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00", "NaN"),
        (b"\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00", "inf"),
        (b"\xa5ab", "ends early"),
        (b"\x01\x02", "1 bytes follow"),
        (b"\xa1\xff", "not UTF-8"),
    ];
    for (payload, why) in cases {
        let mut out = Vec::new();
        let error = Framing::Json
            .encode_request(1, "noop", payload, &mut out)
            .unwrap_err();
        assert!(error.contains("JSON framing"), "{payload:x?}: {error}");
        assert!(error.contains(why), "{payload:x?}: {error}");
        assert!(out.is_empty());
    }
    // A lying array length does not allocate or recurse beyond the payload.
    let error = msgpack_to_json(b"\xdd\xff\xff\xff\xff").unwrap_err();
    assert!(error.contains("longer than the payload"), "{error}");
    let deep = vec![0x91; 10_000];
    assert!(msgpack_to_json(&deep).unwrap_err().contains("nests deeper"));
    // The MessagePack framing carries any bytes.
    let sent = request(Framing::MessagePack, 1, "noop", b"\xc1\xff");
    assert!(sent.ends_with(b"\xa7payload\xc4\x02\xc1\xff"));
}

#[test]
fn malformed_replies_are_breaches_with_a_reason() {
    let msgpack: [(&[u8], &str); 6] = [
        (b"\xc1", "not a valid MessagePack reply"),
        (b"\x81\xa2id\x01", "not a valid MessagePack reply"),
        (b"\x82\xa2id\x01\xa2ok\xc3", "no `output`"),
        (b"\x82\xa2id\x01\xa2ok\xc2", "no `error`"),
        (
            b"\x83\xa2id\x01\xa2ok\xc3\xa6output\xc4\x00\x00",
            "1 bytes follow",
        ),
        (
            b"\x83\xa2id\xa1x\xa2ok\xc3\xa6output\xc4\x00",
            "not a valid MessagePack reply",
        ),
    ];
    for (message, why) in msgpack {
        let error = Framing::MessagePack.decode_reply(message).unwrap_err();
        assert!(error.contains(why), "{message:x?}: {error}");
    }
    // Unknown keys are ignored, as in the wire protocol; a str output is accepted as bytes.
    let reply = Framing::MessagePack
        .decode_reply(b"\x84\xa2id\x07\xa1x\x90\xa2ok\xc3\xa6output\xa1A")
        .unwrap();
    assert_eq!(reply.outcome, Ok(b"A".to_vec()));

    let json: [(&[u8], &str); 5] = [
        (b"ready", "not a valid JSON reply"),
        (b"{\"id\":1}", "neither"),
        (b"{\"id\":1,\"output\":1,\"error\":\"x\"}", "both"),
        (b"{\"id\":-1,\"output\":1}", "not a valid JSON reply"),
        (b"{\"id\":1,\"output\":NaN}", "not a valid JSON reply"),
    ];
    for (line, why) in json {
        let error = Framing::Json.decode_reply(line).unwrap_err();
        assert!(
            error.contains(why),
            "{}: {error}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn oversized_and_truncated_messages_are_read_errors() {
    let too_long = (MAX_MESSAGE as u32 + 1).to_be_bytes();
    let error = Framing::MessagePack
        .read_message(&mut Cursor::new(&too_long[..]))
        .unwrap_err();
    assert!(matches!(error, ReadError::TooLarge { .. }), "{error}");
    for truncated in [&b"\x00\x00"[..], b"\x00\x00\x00\x05\x81"] {
        let error = Framing::MessagePack
            .read_message(&mut Cursor::new(truncated))
            .unwrap_err();
        assert!(matches!(error, ReadError::Truncated), "{error}");
    }
    let error = Framing::Json
        .read_message(&mut Cursor::new(&b"{\"id\":1"[..]))
        .unwrap_err();
    assert!(matches!(error, ReadError::Truncated), "{error}");
}

#[test]
fn framings_parse_by_name_and_configs_are_checked() {
    assert_eq!("json".parse(), Ok(Framing::Json));
    assert_eq!("msgpack".parse(), Ok(Framing::MessagePack));
    assert!("yaml".parse::<Framing>().unwrap_err().contains("`yaml`"));
    let config = |command: &str, job_types: &[&str], copies| {
        ExecConfig::new(
            command,
            job_types.iter().map(|t| t.to_string()).collect(),
            copies,
        )
    };
    assert!(config("cat", &["noop"], 1).validate().is_ok());
    for bad in [
        config(" ", &["noop"], 1),
        config("cat", &[], 1),
        config("cat", &["noop"], 0),
    ] {
        assert!(
            matches!(bad.validate(), Err(ExecError::Config(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn simple_commands_are_execed_and_shell_scripts_run_as_written() {
    use super::program::shell_script;
    assert_eq!(
        shell_script("python3 model.py --framing json"),
        "exec python3 model.py --framing json"
    );
    assert_eq!(shell_script("'my model' -x"), "exec 'my model' -x");
    for script in [
        "cd /srv && python3 model.py",
        "python3 a.py; true",
        "OMP_NUM_THREADS=1 ./model",
        "./model | tee log",
        "if true; then ./model; fi",
        "./model $ARGS",
    ] {
        assert_eq!(shell_script(script), script);
    }
}
