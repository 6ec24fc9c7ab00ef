//! Codec tests: round trips, the byte-level examples in `PROTOCOL.md`, and hostile input.

use super::*;

fn round_trip(message: &Message<'_>) {
    let mut frame = Vec::new();
    encode(message, &mut frame);
    assert_eq!(&decode(&frame).unwrap(), message);
}

#[test]
fn every_message_round_trips() {
    round_trip(&Message::Hello(Hello {
        protocol: PROTOCOL_VERSION,
        name: "w-1".into(),
        host: "node7".into(),
        job_types: vec!["noop".into(), "spin".into()],
        slots: 8,
        prefetch: 1024,
        nonce: Some([9; 32]),
    }));
    round_trip(&Message::Welcome(Welcome {
        worker_id: 3,
        heartbeat_ms: 1000,
        timeout_ms: 5000,
        max_frame: 64 << 20,
    }));
    round_trip(&Message::Reject(Reject {
        reason: "no".into(),
        protocol: 1,
    }));
    round_trip(&Message::Challenge(Challenge {
        nonce: [1; 32],
        hello_digest: [2; 32],
    }));
    round_trip(&Message::Auth(Auth { proof: [3; 32] }));
    round_trip(&Message::Reset(Reset {
        reason: "who?".into(),
    }));
    let big = vec![7u8; 70_000];
    round_trip(&Message::Work(Work {
        batch: u64::MAX,
        units: vec![
            UnitRef {
                id: 0,
                job_type: "noop",
                payload: &[],
            },
            UnitRef {
                id: 1 << 40,
                job_type: "spin",
                payload: &big,
            },
        ],
    }));
    round_trip(&Message::Results(Results {
        batch: 9,
        elapsed_us: 123_456,
        results: vec![
            UnitResultRef {
                id: 5,
                outcome: Ok(&[1, 2, 3]),
            },
            UnitResultRef {
                id: 6,
                outcome: Err("task panicked: boom"),
            },
        ],
    }));
    round_trip(&Message::Heartbeat);
    round_trip(&Message::Goodbye(Goodbye {
        returned: vec![1, 2, 300],
    }));
}

/// The exact bytes shown in PROTOCOL.md; if this changes, the spec must change with it.
#[test]
fn heartbeat_and_work_bytes_match_the_spec() {
    let mut frame = Vec::new();
    encode(&Message::Heartbeat, &mut frame);
    assert_eq!(
        frame,
        b"\x81\xa4type\xa9heartbeat".to_vec(),
        "{}",
        hex(&frame)
    );

    frame.clear();
    encode(
        &Message::Work(Work {
            batch: 7,
            units: vec![UnitRef {
                id: 42,
                job_type: "noop",
                payload: &[0x05],
            }],
        }),
        &mut frame,
    );
    let expected = b"\x83\xa4type\xa4work\xa5batch\x07\xa5units\x91\x93\x2a\xa4noop\xc4\x01\x05";
    assert_eq!(frame, expected.to_vec(), "{}", hex(&frame));

    frame.clear();
    encode(
        &Message::Results(Results {
            batch: 7,
            elapsed_us: 3,
            results: vec![UnitResultRef {
                id: 42,
                outcome: Ok(&[0x05]),
            }],
        }),
        &mut frame,
    );
    let expected = "84 a4 74 79 70 65 a7 72 65 73 75 6c 74 73 a5 62 61 74 63 68 07 \
                    aa 65 6c 61 70 73 65 64 5f 75 73 03 a7 72 65 73 75 6c 74 73 \
                    91 93 2a c3 c4 01 05 ";
    assert_eq!(
        hex(&frame),
        expected
            .split_whitespace()
            .map(|b| format!("{b} "))
            .collect::<String>()
    );

    frame.clear();
    let mut encoder = ResultsEncoder::new(&mut frame, 0, 0, 1);
    encoder.result(42, Err("boom!"));
    assert!(encoder.finish());
    assert!(
        hex(&frame).ends_with("93 2a c2 a5 62 6f 6f 6d 21 "),
        "{}",
        hex(&frame)
    );
}

#[test]
fn fields_may_come_in_any_order_and_unknown_ones_are_skipped() {
    // {"units": [[1, "noop", b""]], "future": {"a": [1, 2.5, nil]}, "type": "work", "batch": 2}
    let mut frame = vec![0x84];
    frame.extend_from_slice(b"\xa5units\x91\x93\x01\xa4noop\xc4\x00");
    frame.extend_from_slice(b"\xa6future\x81\xa1a\x93\x01\xcb\x40\x04\0\0\0\0\0\0\xc0");
    frame.extend_from_slice(b"\xa4type\xa4work\xa5batch\x02");
    let Message::Work(work) = decode(&frame).unwrap() else {
        panic!("not work")
    };
    assert_eq!(work.batch, 2);
    assert_eq!(work.units.len(), 1);
}

#[test]
fn peeking_at_work_reads_its_header_whatever_the_key_order() {
    let mut frame = Vec::new();
    let payload = [1u8, 2, 3];
    let units = vec![
        UnitRef {
            id: 5,
            job_type: "t",
            payload: &payload,
        };
        300
    ];
    encode(&Message::Work(Work { batch: 9, units }), &mut frame);
    assert_eq!(
        peek_work(&frame),
        Ok(Some(WorkHeader {
            batch: 9,
            n_units: 300
        }))
    );
    // Units first and an unknown key last: the units must be skipped, not trusted.
    let reordered =
        b"\x83\xa5units\x92\x93\x01\xa1t\xc4\x00\x93\x02\xa1t\xc4\x00\xa4type\xa4work\xa5batch\x04";
    assert_eq!(
        peek_work(reordered),
        Ok(Some(WorkHeader {
            batch: 4,
            n_units: 2
        }))
    );
    frame.clear();
    encode(&Message::Heartbeat, &mut frame);
    assert_eq!(peek_work(&frame), Ok(None));
    assert!(peek_work(b"\x81\xa5units\x91").is_err());
}

#[test]
fn payloads_sent_as_strings_are_accepted() {
    // Old MessagePack libraries have no bin type and send bytes as raw strings.
    let frame = b"\x83\xa4type\xa4work\xa5batch\x07\xa5units\x91\x93\x2a\xa4noop\xa1\x05";
    let Message::Work(work) = decode(frame).unwrap() else {
        panic!("not work")
    };
    assert_eq!(work.units[0].payload, b"\x05");
}

#[test]
fn bad_frames_give_typed_errors() {
    assert_eq!(decode(b""), Err(DecodeError::Truncated));
    assert!(matches!(
        decode(b"\x92\x01\x02"),
        Err(DecodeError::WrongType { .. })
    ));
    assert_eq!(
        decode(b"\x81\xa4type\xa3foo"),
        Err(DecodeError::UnknownType("foo".into()))
    );
    assert_eq!(
        decode(b"\x81\xa4type\xa4work"),
        Err(DecodeError::MissingField {
            message: "work",
            field: "batch"
        })
    );
    assert_eq!(
        decode(b"\x81\xa4type\xa9heartbeat\x00"),
        Err(DecodeError::TrailingBytes(1))
    );
    // A units array claiming 4 billion entries in a 20-byte frame must not allocate them.
    assert_eq!(
        decode(b"\x82\xa4type\xa4work\xa5units\xdd\xff\xff\xff\xff"),
        Err(DecodeError::Truncated)
    );
    // A job type that is not UTF-8 is caught even though unit types are validated once per run.
    assert_eq!(
        decode(b"\x83\xa4type\xa4work\xa5batch\x01\xa5units\x92\x93\x01\xa1t\xc4\x00\x93\x02\xa1\xff\xc4\x00"),
        Err(DecodeError::InvalidUtf8("units"))
    );
    let deep: Vec<u8> = std::iter::once(0x81)
        .chain(b"\xa1x".iter().copied())
        .chain(std::iter::repeat_n(0x91, 100))
        .chain(std::iter::once(0xc0))
        .collect();
    assert_eq!(decode(&deep), Err(DecodeError::TooDeep));
}

#[test]
fn random_and_mutated_bytes_never_panic() {
    // A fixed-seed xorshift keeps the test reproducible; the fuzz targets explore further.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut valid = Vec::new();
    encode(
        &Message::Results(Results {
            batch: 1,
            elapsed_us: 2,
            results: vec![UnitResultRef {
                id: 3,
                outcome: Ok(b"abc"),
            }],
        }),
        &mut valid,
    );
    let mut decoded_ok = 0;
    for round in 0..20_000 {
        let frame: Vec<u8> = if round % 2 == 0 {
            let len = (next() % 64) as usize;
            (0..len).map(|_| next() as u8).collect()
        } else {
            let mut frame = valid.clone();
            let at = (next() as usize) % frame.len();
            frame[at] = next() as u8;
            frame
        };
        decoded_ok += usize::from(decode(&frame).is_ok());
    }
    // Some single-byte mutations (of payload bytes) still decode; most random frames do not.
    assert!(decoded_ok > 0 && decoded_ok < 20_000);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x} ")).collect()
}
