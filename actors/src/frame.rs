//! Frames: the JSON records on the input topic, how they are validated, and the chunk that
//! carries parsed frames from a partition to the batch actor.
//!
//! A frame is a JSON object with `ts` (seconds since the epoch, integer or float) and `uid` (a
//! string); other fields are ignored. Everything else is invalid and is classified by
//! [`InvalidReason`] so it can be counted and skipped without stopping the partition.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;

/// Why a record on the input topic is not a usable frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InvalidReason {
    /// The payload is larger than `frames.max_bytes`.
    TooLarge,
    /// The payload is not valid UTF-8.
    NotUtf8,
    /// The payload is empty, absent or not JSON (including duplicate keys).
    NotJson,
    /// The payload is JSON but not an object.
    NotObject,
    /// The object lacks `ts` or `uid`.
    MissingField,
    /// `ts` is not a number or `uid` is not a string.
    WrongType,
    /// `ts` lies outside `[frames.min_ts, frames.max_ts]`.
    ImplausibleTs,
    /// `ts` is more than `frames.max_future_secs` ahead of the wall clock when the frame is
    /// read: one such frame would close every open window early and make later frames late.
    FutureTs,
}

impl InvalidReason {
    /// Every reason, in the order used by [`InvalidCounts`].
    pub const ALL: [InvalidReason; 8] = [
        InvalidReason::TooLarge,
        InvalidReason::NotUtf8,
        InvalidReason::NotJson,
        InvalidReason::NotObject,
        InvalidReason::MissingField,
        InvalidReason::WrongType,
        InvalidReason::ImplausibleTs,
        InvalidReason::FutureTs,
    ];

    /// The stable name used in logs, metrics and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            InvalidReason::TooLarge => "too_large",
            InvalidReason::NotUtf8 => "not_utf8",
            InvalidReason::NotJson => "not_json",
            InvalidReason::NotObject => "not_object",
            InvalidReason::MissingField => "missing_field",
            InvalidReason::WrongType => "wrong_type",
            InvalidReason::ImplausibleTs => "implausible_ts",
            InvalidReason::FutureTs => "future_ts",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counts of invalid frames, one per [`InvalidReason`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InvalidCounts([u64; 8]);

impl InvalidCounts {
    /// Counts one more frame for `reason`.
    pub fn add(&mut self, reason: InvalidReason) {
        self.0[reason.index()] += 1;
    }

    /// Adds every count of `other` to this one.
    pub fn merge(&mut self, other: &InvalidCounts) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0.iter()) {
            *mine += theirs;
        }
    }

    /// The count for one reason.
    pub fn get(&self, reason: InvalidReason) -> u64 {
        self.0[reason.index()]
    }

    /// All invalid frames, whatever the reason.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// `(reason, count)` for every reason, zero counts included.
    pub fn iter(&self) -> impl Iterator<Item = (InvalidReason, u64)> + '_ {
        InvalidReason::ALL.iter().map(|r| (*r, self.get(*r)))
    }
}

/// The limits a frame must respect to be counted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameLimits {
    /// Payloads larger than this are [`InvalidReason::TooLarge`].
    pub max_bytes: usize,
    /// Smallest plausible `ts`, in epoch seconds.
    pub min_ts: f64,
    /// Largest plausible `ts`, in epoch seconds.
    pub max_ts: f64,
    /// How far (seconds) `ts` may lie ahead of the wall clock; infinite: no limit.
    pub max_future_secs: f64,
    /// `ts` above this (epoch seconds) is [`InvalidReason::FutureTs`]: the wall clock when the
    /// limits were last [`refreshed`](FrameLimits::at) plus `max_future_secs`.
    pub future_after: f64,
    /// What happens to invalid frames beyond counting them.
    pub invalid: InvalidPolicy,
}

/// What a partition does with invalid frames besides counting them: keep them for the
/// dead-letter topic, and stop once too many come.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InvalidPolicy {
    /// Each invalid record goes to the batch actor, for the dead-letter topic.
    pub dead_letter: bool,
    /// This many invalid frames in a row stop the partition (0: no limit).
    pub max_consecutive: u64,
    /// More than this share of `share_of` consecutive records invalid stops the partition.
    pub max_share: f64,
    /// Records per block the share is counted over.
    pub share_of: u64,
}

impl InvalidPolicy {
    /// Count and skip, without limits (no dead-letter topic).
    pub const NONE: InvalidPolicy = InvalidPolicy {
        dead_letter: false,
        max_consecutive: 0,
        max_share: 1.0,
        share_of: 1,
    };
}

impl Default for InvalidPolicy {
    fn default() -> Self {
        InvalidPolicy::NONE
    }
}

/// An invalid record on its way to the dead-letter topic, unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Where it was read.
    pub partition: crate::topic::PartitionId,
    /// Its offset there.
    pub offset: i64,
    /// Why it is invalid.
    pub reason: InvalidReason,
    /// Its value, as read (`None`: the record had no value).
    pub payload: Option<Vec<u8>>,
    /// Its key, as read.
    pub key: Option<Vec<u8>>,
    /// Its headers, as read, in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Too many invalid frames in one partition (see [`InvalidPolicy`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "limit", rename_all = "snake_case")]
pub enum InvalidFlood {
    /// `count` invalid frames in a row.
    Consecutive {
        /// How many.
        count: u64,
        /// The last one's offset.
        offset: i64,
        /// Why the last one is invalid.
        reason: String,
    },
    /// `invalid` of `of` records invalid, above the allowed share.
    Share {
        /// Invalid records in the block.
        invalid: u64,
        /// Records in the block.
        of: u64,
        /// The last invalid one's offset.
        offset: i64,
    },
}

impl fmt::Display for InvalidFlood {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidFlood::Consecutive {
                count,
                offset,
                reason,
            } => write!(
                f,
                "{count} invalid frames in a row, the last at offset {offset} ({reason}), reach                  sink.dead_letter.max_consecutive: the topic's producer may be writing another                  format; stopping instead of dead-lettering them all"
            ),
            InvalidFlood::Share {
                invalid,
                of,
                offset,
            } => write!(
                f,
                "{invalid} of {of} records invalid (up to offset {offset}), above                  sink.dead_letter.max_share: the topic's producer may be writing another                  format; stopping instead of dead-lettering them all"
            ),
        }
    }
}

/// Counts a partition's invalid frames against its [`InvalidPolicy`].
#[derive(Debug, Clone, Default)]
pub struct InvalidTally {
    consecutive: u64,
    block_records: u64,
    block_invalid: u64,
}

impl InvalidTally {
    /// Counts one record (`invalid` with its reason, or valid); says when the policy's limits
    /// are passed.
    pub fn record(
        &mut self,
        policy: &InvalidPolicy,
        offset: i64,
        invalid: Option<InvalidReason>,
    ) -> Result<(), InvalidFlood> {
        if self.block_records == policy.share_of {
            self.block_records = 0;
            self.block_invalid = 0;
        }
        self.block_records += 1;
        let Some(reason) = invalid else {
            self.consecutive = 0;
            return Ok(());
        };
        self.consecutive += 1;
        self.block_invalid += 1;
        if policy.max_consecutive > 0 && self.consecutive >= policy.max_consecutive {
            return Err(InvalidFlood::Consecutive {
                count: self.consecutive,
                offset,
                reason: reason.as_str().to_owned(),
            });
        }
        // The block's share is over once its invalid records alone pass it, whatever follows.
        if policy.max_share < 1.0
            && self.block_invalid as f64 > policy.max_share * policy.share_of as f64
        {
            return Err(InvalidFlood::Share {
                invalid: self.block_invalid,
                of: self.block_records,
                offset,
            });
        }
        Ok(())
    }
}

impl FrameLimits {
    /// These limits with the wall clock at `now` (epoch seconds).
    #[must_use]
    pub fn at(self, now: f64) -> FrameLimits {
        FrameLimits {
            future_after: now + self.max_future_secs,
            ..self
        }
    }
}

/// A valid frame; `uid` borrows from the payload unless it contained escapes.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame<'a> {
    /// Event time in seconds since the epoch.
    pub ts: f64,
    /// The user id.
    pub uid: Cow<'a, str>,
}

#[derive(Deserialize)]
struct RawFrame<'a> {
    // serde's f64 accepts JSON integers as well as floats, which is what the format allows.
    ts: f64,
    #[serde(borrow)]
    uid: Cow<'a, str>,
}

/// Parses and validates one record payload (`None` for a record without a value).
pub fn parse_frame<'a>(
    payload: Option<&'a [u8]>,
    limits: &FrameLimits,
) -> Result<Frame<'a>, InvalidReason> {
    let bytes = payload.unwrap_or_default();
    if bytes.len() > limits.max_bytes {
        return Err(InvalidReason::TooLarge);
    }
    // Checked up front: serde_json does not validate UTF-8 inside fields it skips.
    let text = std::str::from_utf8(bytes).map_err(|_| InvalidReason::NotUtf8)?;
    // The derived struct parser would also take a JSON array in field order.
    if !text.trim_start().starts_with('{') {
        return Err(classify(text));
    }
    let raw: RawFrame<'_> = match serde_json::from_str(text) {
        Ok(raw) => raw,
        Err(_) => return Err(classify(text)),
    };
    if !(raw.ts >= limits.min_ts && raw.ts <= limits.max_ts) {
        return Err(InvalidReason::ImplausibleTs);
    }
    if raw.ts > limits.future_after {
        return Err(InvalidReason::FutureTs);
    }
    Ok(Frame {
        ts: raw.ts,
        uid: raw.uid,
    })
}

/// Finds out why a payload failed the typed parse. Only runs for invalid frames, so it may
/// parse again into a generic value.
fn classify(text: &str) -> InvalidReason {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(_) => return InvalidReason::NotJson,
    };
    let Some(object) = value.as_object() else {
        return InvalidReason::NotObject;
    };
    match (object.get("ts"), object.get("uid")) {
        (None, _) | (_, None) => InvalidReason::MissingField,
        (Some(ts), Some(uid)) if !ts.is_number() || !uid.is_string() => InvalidReason::WrongType,
        // Both fields look right in the generic value, so the typed parse failed on something
        // the generic one tolerates: a duplicate key.
        _ => InvalidReason::NotJson,
    }
}

/// Window start for an event time: `floor(ts / length) * length`.
pub fn window_start(ts: f64, length_secs: i64) -> i64 {
    (ts / length_secs as f64).floor() as i64 * length_secs
}

/// Parsed frames of one partition, in offset order, stored column-wise so a chunk of
/// thousands of frames costs a handful of allocations instead of one per frame.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FrameChunk {
    offsets: Vec<i64>,
    ts: Vec<f64>,
    uid_ends: Vec<usize>,
    uids: String,
}

impl FrameChunk {
    /// An empty chunk with room for `frames` frames.
    pub fn with_capacity(frames: usize) -> Self {
        FrameChunk {
            offsets: Vec::with_capacity(frames),
            ts: Vec::with_capacity(frames),
            uid_ends: Vec::with_capacity(frames),
            uids: String::with_capacity(frames * 12),
        }
    }

    /// Appends a frame read at `offset`.
    pub fn push(&mut self, offset: i64, ts: f64, uid: &str) {
        self.offsets.push(offset);
        self.ts.push(ts);
        self.uids.push_str(uid);
        self.uid_ends.push(self.uids.len());
    }

    /// Number of frames in the chunk.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// True when the chunk holds no frame.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// `(offset, ts, uid)` of every frame, in offset order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, f64, &str)> + '_ {
        let starts = std::iter::once(0).chain(self.uid_ends.iter().copied());
        self.offsets
            .iter()
            .zip(self.ts.iter())
            .zip(starts.zip(self.uid_ends.iter()))
            .map(move |((offset, ts), (start, end))| (*offset, *ts, &self.uids[start..*end]))
    }

    /// The highest event time in the chunk.
    pub fn max_ts(&self) -> Option<f64> {
        self.ts.iter().copied().reduce(f64::max)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const LIMITS: FrameLimits = FrameLimits {
        max_bytes: 256,
        min_ts: 946_684_800.0,
        max_ts: 4_102_444_800.0,
        max_future_secs: f64::INFINITY,
        future_after: f64::INFINITY,
        invalid: crate::frame::InvalidPolicy::NONE,
    };

    fn reason(payload: &[u8]) -> InvalidReason {
        parse_frame(Some(payload), &LIMITS).expect_err("frame should be invalid")
    }

    #[test]
    fn a_ts_too_far_ahead_of_the_clock_is_its_own_reason_and_the_past_stays_valid() {
        let now = 1_790_000_000.0;
        let limits = FrameLimits {
            max_future_secs: 300.0,
            ..LIMITS
        }
        .at(now);
        let frame = |ts: f64| format!(r#"{{"ts":{ts},"uid":"u"}}"#).into_bytes();
        assert!(parse_frame(Some(&frame(now + 300.0)), &limits).is_ok());
        assert!(
            parse_frame(Some(&frame(now - 86_400.0 * 365.0)), &limits).is_ok(),
            "replays"
        );
        assert_eq!(
            parse_frame(Some(&frame(now + 301.0)), &limits),
            Err(InvalidReason::FutureTs)
        );
        assert_eq!(
            parse_frame(Some(&frame(4_000_000_000.0)), &limits),
            Err(InvalidReason::FutureTs),
            "years ahead, yet before frames.max_ts"
        );
        // Outside [min_ts, max_ts] stays implausible, whatever the clock says.
        assert_eq!(
            parse_frame(Some(&frame(5_000_000_000.0)), &limits),
            Err(InvalidReason::ImplausibleTs)
        );
        // The clock moves on: the same frame is valid once its time has come.
        assert!(parse_frame(Some(&frame(now + 301.0)), &limits.at(now + 1.0)).is_ok());
    }

    #[test]
    fn accepts_integer_and_float_ts_and_ignores_other_fields() {
        let f = parse_frame(
            Some(br#"{"ts":1700000000,"uid":"u1","x":[1,{"y":null}]}"#),
            &LIMITS,
        )
        .unwrap();
        assert_eq!(f.ts, 1_700_000_000.0);
        assert_eq!(f.uid, "u1");
        let f = parse_frame(Some(br#"{"uid":"a\"b","ts":1700000000.75}"#), &LIMITS).unwrap();
        assert_eq!(f.ts, 1_700_000_000.75);
        assert_eq!(f.uid, "a\"b");
    }

    #[test]
    fn classifies_every_kind_of_bad_frame() {
        assert_eq!(reason(&[b'{'; 300]), InvalidReason::TooLarge);
        assert_eq!(
            reason(b"{\"ts\":1700000000,\"uid\":\"\xff\xfe\"}"),
            InvalidReason::NotUtf8
        );
        assert_eq!(
            reason(b"{\"ts\":1700000000,\"uid\":\"u\",\"z\":\"\xc3\"}"),
            InvalidReason::NotUtf8
        );
        assert_eq!(reason(b"{ts: 1}"), InvalidReason::NotJson);
        assert_eq!(reason(b""), InvalidReason::NotJson);
        assert_eq!(
            parse_frame(None, &LIMITS).expect_err("absent value"),
            InvalidReason::NotJson
        );
        assert_eq!(
            reason(br#"{"ts":1700000000,"uid":"a","ts":1700000001}"#),
            InvalidReason::NotJson
        );
        assert_eq!(reason(br#"[1,2]"#), InvalidReason::NotObject);
        assert_eq!(reason(br#""text""#), InvalidReason::NotObject);
        assert_eq!(reason(br#"{"ts":1700000000}"#), InvalidReason::MissingField);
        assert_eq!(reason(br#"{"uid":"u"}"#), InvalidReason::MissingField);
        assert_eq!(
            reason(br#"{"ts":"1700000000","uid":"u"}"#),
            InvalidReason::WrongType
        );
        assert_eq!(
            reason(br#"{"ts":1700000000,"uid":7}"#),
            InvalidReason::WrongType
        );
        assert_eq!(
            reason(br#"{"ts":null,"uid":"u"}"#),
            InvalidReason::WrongType
        );
        assert_eq!(
            reason(br#"{"ts":12,"uid":"u"}"#),
            InvalidReason::ImplausibleTs
        );
        assert_eq!(
            reason(br#"{"ts":9e15,"uid":"u"}"#),
            InvalidReason::ImplausibleTs
        );
        assert_eq!(
            reason(br#"{"ts":-5,"uid":"u"}"#),
            InvalidReason::ImplausibleTs
        );
    }

    #[test]
    fn window_start_floors_including_fractions() {
        assert_eq!(window_start(1_700_000_039.9, 60), 1_699_999_980);
        assert_eq!(window_start(1_700_000_040.0, 60), 1_700_000_040);
        assert_eq!(window_start(119.999, 60), 60);
        assert_eq!(window_start(7.5, 1), 7);
    }

    #[test]
    fn chunk_round_trips_frames_in_order() {
        let mut chunk = FrameChunk::with_capacity(2);
        chunk.push(10, 5.0, "alpha");
        chunk.push(11, 7.5, "");
        chunk.push(13, 6.0, "ü");
        let frames: Vec<_> = chunk.iter().collect();
        assert_eq!(
            frames,
            vec![(10, 5.0, "alpha"), (11, 7.5, ""), (13, 6.0, "ü")]
        );
        assert_eq!(chunk.max_ts(), Some(7.5));
        assert_eq!(chunk.len(), 3);
    }

    #[test]
    fn invalid_counts_add_up() {
        let mut a = InvalidCounts::default();
        a.add(InvalidReason::NotJson);
        a.add(InvalidReason::NotJson);
        let mut b = InvalidCounts::default();
        b.add(InvalidReason::TooLarge);
        a.merge(&b);
        assert_eq!(a.get(InvalidReason::NotJson), 2);
        assert_eq!(a.get(InvalidReason::TooLarge), 1);
        assert_eq!(a.total(), 3);
    }

    #[test]
    fn deep_nesting_in_an_ignored_field_is_skipped_without_recursion() {
        let limits = FrameLimits {
            max_bytes: 1 << 20,
            ..LIMITS
        };
        let deep = format!(
            r#"{{"ts":1700000000,"uid":"u","x":{}1{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(
            parse_frame(Some(deep.as_bytes()), &limits).unwrap().uid,
            "u"
        );
    }

    /// JSON-like text: objects with `ts` and `uid` among other keys, values of every kind.
    fn jsonish() -> impl Strategy<Value = String> {
        let value = prop_oneof![
            any::<f64>().prop_map(|f| f.to_string()),
            (0i64..5_000_000_000).prop_map(|i| i.to_string()),
            "\\PC{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("[1,{}]".to_owned()),
            "[\\[\\]{}:,\"0-9a-z\\\\ ]{0,16}",
        ];
        let key = prop_oneof![Just("ts"), Just("uid"), Just("x"), Just("")];
        prop::collection::vec((key, value), 0..5).prop_map(|fields| {
            let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", body.join(","))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// Any bytes: the parser never panics, and whatever it accepts is a frame within the
        /// limits.
        #[test]
        fn arbitrary_bytes_never_crash_the_parser(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(frame) = parse_frame(Some(&bytes), &LIMITS) {
                prop_assert!(frame.ts >= LIMITS.min_ts && frame.ts <= LIMITS.max_ts);
            }
        }

        /// JSON-like objects: accepted exactly when they fit `max_bytes` and `ts` is a
        /// plausible number and `uid` a string, each given once; rejected otherwise.
        #[test]
        fn objects_are_accepted_exactly_when_ts_and_uid_are_right(text in jsonish()) {
            let generic: Result<serde_json::Value, _> = serde_json::from_str(&text);
            let parsed = parse_frame(Some(text.as_bytes()), &LIMITS);
            if let Ok(frame) = &parsed {
                let object = generic.as_ref().expect("accepted text is JSON");
                prop_assert_eq!(object["ts"].as_f64(), Some(frame.ts));
                prop_assert_eq!(object["uid"].as_str(), Some(&*frame.uid));
                prop_assert_eq!(text.matches("\"ts\":").count(), 1);
            } else if let Ok(object) = &generic {
                let ts_ok = object["ts"].as_f64().is_some_and(|t| (LIMITS.min_ts..=LIMITS.max_ts).contains(&t));
                let once = text.matches("\"ts\":").count() == 1 && text.matches("\"uid\":").count() == 1;
                let fits = text.len() <= LIMITS.max_bytes;
                prop_assert!(!(fits && ts_ok && object["uid"].is_string() && once), "rejected {text}: {parsed:?}");
            }
        }
    }

    #[test]
    fn the_tally_stops_at_a_run_of_invalid_frames_or_a_share_of_a_block() {
        let policy = InvalidPolicy {
            dead_letter: true,
            max_consecutive: 3,
            max_share: 0.5,
            share_of: 10,
        };
        let bad = Some(InvalidReason::NotJson);
        let mut tally = InvalidTally::default();
        // Two in a row, then a valid one: the run starts again.
        for (offset, invalid) in [(0, bad), (1, bad), (2, None), (3, bad), (4, bad)] {
            tally.record(&policy, offset, invalid).unwrap();
        }
        assert_eq!(
            tally.record(&policy, 5, bad),
            Err(InvalidFlood::Consecutive {
                count: 3,
                offset: 5,
                reason: "not_json".into()
            })
        );
        // Alternating: never three in a row, but six of the ten of a block are invalid.
        let mut tally = InvalidTally::default();
        let mut stopped = None;
        for offset in 0..20 {
            let invalid = (offset % 3 != 2).then_some(InvalidReason::NotObject);
            if let Err(flood) = tally.record(&policy, offset, invalid) {
                stopped = Some(flood);
                break;
            }
        }
        assert_eq!(
            stopped,
            Some(InvalidFlood::Share {
                invalid: 6,
                of: 8,
                offset: 7
            })
        );
        // Half of every block is allowed; blocks start afresh.
        let mut tally = InvalidTally::default();
        for offset in 0..100 {
            let invalid = (offset % 2 == 0).then_some(InvalidReason::WrongType);
            tally.record(&policy, offset, invalid).unwrap();
        }
        // Without limits nothing stops.
        let mut tally = InvalidTally::default();
        for offset in 0..10_000 {
            tally.record(&InvalidPolicy::NONE, offset, bad).unwrap();
        }
    }
}
