//! Property tests of the codec: every message round-trips for arbitrary field values, and
//! `decode` on arbitrary or mutated frames never panics nor allocates beyond what the frame
//! could hold (measured with a counting allocator, which is why this is its own test binary).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ganger_core::protocol::{
    decode, encode, Auth, Challenge, Goodbye, Hello, Message, Reject, Reset, Results, UnitRef,
    UnitResultRef, Welcome, Work,
};
use proptest::prelude::*;

/// Counts the bytes the current thread asks for while `COUNTING` is set; other threads (the
/// test harness runs tests in parallel) do not disturb it.
struct CountingAllocator;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

fn note(bytes: usize) {
    // `try_with`: the allocator may run while the thread's locals are being torn down.
    let _ = COUNTING.try_with(|counting| {
        if counting.get() {
            let _ = ALLOCATED.try_with(|n| n.set(n.get() + bytes));
        }
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; counting only reads and
// writes thread-local cells, which never allocate (const-initialised, no destructor).
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: forwarded with the caller's pointer, layout and size.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Decodes `frame`, returning whether it decoded and the bytes allocated meanwhile.
fn decode_counting(frame: &[u8]) -> (bool, usize) {
    ALLOCATED.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    let decoded = decode(frame).is_ok();
    COUNTING.with(|c| c.set(false));
    (decoded, ALLOCATED.with(Cell::get))
}

/// The most a decode of `frame` may allocate: each element of a decoded vector takes at least
/// one byte of the frame, the largest element (a unit or a result) is 40 bytes, growth at most
/// doubles that, and owned strings are copies of frame bytes.
fn allocation_bound(frame: &[u8]) -> usize {
    let element = std::mem::size_of::<UnitResultRef<'static>>()
        .max(std::mem::size_of::<UnitRef<'static>>())
        .max(std::mem::size_of::<String>());
    4 * element * frame.len() + 1024
}

/// A message with owned fields, from which a borrowing [`Message`] is built.
#[derive(Debug, Clone)]
enum Owned {
    Hello(Hello),
    Welcome(Welcome),
    Reject(Reject),
    Reset(Reset),
    Work(u64, Vec<(u64, String, Vec<u8>)>),
    Results(u64, u64, Vec<(u64, Result<Vec<u8>, String>)>),
    Heartbeat,
    Goodbye(Goodbye),
    Challenge(Challenge),
    Auth(Auth),
}

impl Owned {
    fn message(&self) -> Message<'_> {
        match self {
            Owned::Hello(h) => Message::Hello(h.clone()),
            Owned::Welcome(w) => Message::Welcome(w.clone()),
            Owned::Reject(r) => Message::Reject(r.clone()),
            Owned::Reset(r) => Message::Reset(r.clone()),
            Owned::Work(batch, units) => Message::Work(Work {
                batch: *batch,
                units: units
                    .iter()
                    .map(|(id, job_type, payload)| UnitRef {
                        id: *id,
                        job_type,
                        payload,
                    })
                    .collect(),
            }),
            Owned::Results(batch, elapsed_us, results) => Message::Results(Results {
                batch: *batch,
                elapsed_us: *elapsed_us,
                results: results
                    .iter()
                    .map(|(id, outcome)| UnitResultRef {
                        id: *id,
                        outcome: match outcome {
                            Ok(output) => Ok(output),
                            Err(error) => Err(error),
                        },
                    })
                    .collect(),
            }),
            Owned::Heartbeat => Message::Heartbeat,
            Owned::Goodbye(g) => Message::Goodbye(g.clone()),
            Owned::Challenge(c) => Message::Challenge(c.clone()),
            Owned::Auth(a) => Message::Auth(a.clone()),
        }
    }
}

fn text() -> impl Strategy<Value = String> {
    // Any Unicode, including the empty string and multi-byte characters.
    ".{0,24}"
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..48)
}

fn owned_message() -> impl Strategy<Value = Owned> {
    prop_oneof![
        (
            any::<u32>(),
            text(),
            text(),
            prop::collection::vec(text(), 0..5),
            any::<u32>(),
            any::<u32>(),
            any::<Option<[u8; 32]>>()
        )
            .prop_map(
                |(protocol, name, host, job_types, slots, prefetch, nonce)| {
                    Owned::Hello(Hello {
                        protocol,
                        name,
                        host,
                        job_types,
                        slots,
                        prefetch,
                        nonce,
                    })
                }
            ),
        any::<([u8; 32], [u8; 32])>().prop_map(|(nonce, hello_digest)| {
            Owned::Challenge(Challenge {
                nonce,
                hello_digest,
            })
        }),
        any::<[u8; 32]>().prop_map(|proof| Owned::Auth(Auth { proof })),
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
            |(worker_id, heartbeat_ms, timeout_ms, max_frame)| Owned::Welcome(Welcome {
                worker_id,
                heartbeat_ms,
                timeout_ms,
                max_frame,
            })
        ),
        (text(), any::<u32>())
            .prop_map(|(reason, protocol)| Owned::Reject(Reject { reason, protocol })),
        text().prop_map(|reason| Owned::Reset(Reset { reason })),
        (
            any::<u64>(),
            prop::collection::vec((any::<u64>(), text(), bytes()), 0..8)
        )
            .prop_map(|(batch, units)| Owned::Work(batch, units)),
        (
            any::<u64>(),
            any::<u64>(),
            prop::collection::vec(
                (
                    any::<u64>(),
                    prop_oneof![bytes().prop_map(Ok), text().prop_map(Err)]
                ),
                0..8
            )
        )
            .prop_map(|(batch, elapsed_us, results)| Owned::Results(batch, elapsed_us, results)),
        Just(Owned::Heartbeat),
        prop::collection::vec(any::<u64>(), 0..16)
            .prop_map(|returned| Owned::Goodbye(Goodbye { returned })),
    ]
}

/// A valid frame with a few bytes overwritten, inserted or cut off.
fn mutated_frame() -> impl Strategy<Value = Vec<u8>> {
    (
        owned_message(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    )
        .prop_map(|(owned, edits)| {
            let mut frame = Vec::new();
            encode(&owned.message(), &mut frame);
            for (at, byte, how) in edits {
                match how {
                    0 if !frame.is_empty() => {
                        let i = at.index(frame.len());
                        frame[i] = byte;
                    }
                    1 => {
                        let i = at.index(frame.len() + 1);
                        frame.insert(i, byte);
                    }
                    _ => {
                        let i = at.index(frame.len() + 1);
                        frame.truncate(i);
                    }
                }
            }
            frame
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_message_round_trips(owned in owned_message()) {
        let message = owned.message();
        let mut frame = Vec::new();
        encode(&message, &mut frame);
        prop_assert_eq!(decode(&frame), Ok(message));
    }

    #[test]
    fn arbitrary_bytes_never_panic_nor_over_allocate(
        frame in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let (_, allocated) = decode_counting(&frame);
        prop_assert!(allocated <= allocation_bound(&frame), "{allocated} bytes for {frame:02x?}");
    }

    #[test]
    fn mutated_frames_never_panic_nor_over_allocate(frame in mutated_frame()) {
        let (decoded, allocated) = decode_counting(&frame);
        prop_assert!(allocated <= allocation_bound(&frame), "{allocated} bytes for {frame:02x?}");
        // Whatever still decodes must survive its own round trip.
        if decoded {
            let message = decode(&frame).unwrap();
            let mut again = Vec::new();
            encode(&message, &mut again);
            prop_assert_eq!(decode(&again), Ok(message));
        }
    }

    /// Container headers that claim far more elements than the frame holds: the classic way to
    /// make a decoder pre-allocate gigabytes.
    #[test]
    fn huge_claimed_lengths_allocate_only_what_the_frame_holds(
        key in prop::sample::select(vec!["units", "results", "returned", "job_types"]),
        kind in prop::sample::select(vec!["work", "results", "goodbye", "hello"]),
        claimed in any::<u32>(),
        tail in prop::collection::vec(any::<u8>(), 0..32),
    ) {
        let mut frame = vec![0x82, 0xa4];
        frame.extend_from_slice(b"type");
        frame.push(0xa0 | kind.len() as u8);
        frame.extend_from_slice(kind.as_bytes());
        frame.push(0xa0 | key.len() as u8);
        frame.extend_from_slice(key.as_bytes());
        frame.push(0xdd);
        frame.extend_from_slice(&claimed.to_be_bytes());
        frame.extend_from_slice(&tail);
        let (decoded, allocated) = decode_counting(&frame);
        prop_assert!(!decoded || claimed as usize <= tail.len());
        prop_assert!(allocated <= allocation_bound(&frame), "{allocated} bytes for {frame:02x?}");
    }
}

/// The counting allocator must see allocations, or the bounds above would hold vacuously.
#[test]
fn the_counting_allocator_counts() {
    let mut frame = Vec::new();
    let owned = Owned::Work(1, vec![(2, "t".into(), vec![1]); 10]);
    encode(&owned.message(), &mut frame);
    let (decoded, allocated) = decode_counting(&frame);
    assert!(decoded);
    assert!(
        allocated >= 10 * std::mem::size_of::<UnitRef<'static>>(),
        "{allocated}"
    );
}

/// The fuzz seeds (`fuzz/corpus/decode`) are valid frames, so that the fuzzer starts from every
/// message type rather than from garbage.
#[test]
fn the_fuzz_seeds_decode() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/decode");
    let mut seen = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("the seed corpus exists") {
        let path = entry.unwrap().path();
        let frame = std::fs::read(&path).unwrap();
        let message = decode(&frame).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        seen.insert(message.type_name());
    }
    assert_eq!(
        seen.len(),
        8,
        "one seed per message type at least: {seen:?}"
    );
}
