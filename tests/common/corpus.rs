//! Hostile records: every kind of bad input a producer can send, each with the reason the
//! service must count it under.

/// A record of the corpus.
pub struct Hostile {
    /// What it is.
    pub name: &'static str,
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its value (`None`: a record without a value, a tombstone).
    pub value: Option<Vec<u8>>,
    /// The reason it is invalid (`InvalidReason::as_str`).
    pub reason: &'static str,
}

fn record(name: &'static str, value: impl Into<Vec<u8>>, reason: &'static str) -> Hostile {
    Hostile {
        name,
        key: Some(b"hostile".to_vec()),
        value: Some(value.into()),
        reason,
    }
}

/// The corpus; `ts` is a plausible past event time where one is needed.
pub fn hostile_records() -> Vec<Hostile> {
    let ts = 1_790_000_000;
    // Deeper than serde_json's recursion limit (128). (Deep nesting inside an ignored field of
    // an otherwise valid frame is skipped without recursion: that frame counts.)
    let nested = format!("{}1{}", "[".repeat(1_000), "]".repeat(1_000));
    let mut ten_megabytes = format!(r#"{{"ts":{ts},"uid":"u","pad":""#).into_bytes();
    ten_megabytes.resize(10 * 1024 * 1024, b'x');
    ten_megabytes.extend_from_slice(b"\"}");
    let mut bom = "\u{feff}".as_bytes().to_vec();
    bom.extend_from_slice(format!(r#"{{"ts":{ts},"uid":"u"}}"#).as_bytes());
    let mut not_utf8 = format!(r#"{{"ts":{ts},"uid":""#).into_bytes();
    not_utf8.extend_from_slice(&[0xff, 0xfe, b'"', b'}']);
    let mut overlong = format!(r#"{{"ts":{ts},"uid":""#).into_bytes();
    overlong.extend_from_slice(&[0xc0, 0xaf, b'"', b'}']);
    let mut utf8_surrogate = format!(r#"{{"ts":{ts},"uid":""#).into_bytes();
    utf8_surrogate.extend_from_slice(&[0xed, 0xa0, 0x80, b'"', b'}']);
    vec![
        Hostile {
            name: "tombstone without a key",
            key: None,
            value: None,
            reason: "not_json",
        },
        Hostile {
            name: "key only, null value",
            key: Some(b"u1".to_vec()),
            value: None,
            reason: "not_json",
        },
        record("empty value", Vec::new(), "not_json"),
        record("plain text", "not json at all", "not_json"),
        record(
            "truncated object",
            format!(r#"{{"ts":{ts},"uid":"#),
            "not_json",
        ),
        record(
            "duplicate ts keys",
            format!(r#"{{"ts":{ts},"ts":{ts},"uid":"u"}}"#),
            "not_json",
        ),
        record(
            "duplicate uid keys",
            format!(r#"{{"ts":{ts},"uid":"a","uid":"b"}}"#),
            "not_json",
        ),
        record("nested 1 000 levels deep", nested, "not_json"),
        record("byte order mark", bom, "not_json"),
        record(
            "raw control character in a string",
            format!("{{\"ts\":{ts},\"uid\":\"a\u{1}b\"}}"),
            "not_json",
        ),
        record(
            "lone surrogate escape",
            format!(r#"{{"ts":{ts},"uid":"\ud800"}}"#),
            "not_json",
        ),
        record("bare NaN", r#"{"ts":NaN,"uid":"u"}"#, "not_json"),
        record("number beyond f64", r#"{"ts":1e400,"uid":"u"}"#, "not_json"),
        record("ten megabytes", ten_megabytes, "too_large"),
        record("invalid UTF-8", not_utf8, "not_utf8"),
        record("overlong UTF-8", overlong, "not_utf8"),
        record("UTF-8 encoded surrogate", utf8_surrogate, "not_utf8"),
        record("array", "[1,2,3]", "not_object"),
        record("string", r#""a string""#, "not_object"),
        record("number", "1790000000", "not_object"),
        record("null", "null", "not_object"),
        record("no ts", r#"{"uid":"u"}"#, "missing_field"),
        record("no uid", format!(r#"{{"ts":{ts}}}"#), "missing_field"),
        record(
            "ts as text",
            format!(r#"{{"ts":"{ts}","uid":"u"}}"#),
            "wrong_type",
        ),
        record(
            "ts as the text NaN",
            r#"{"ts":"NaN","uid":"u"}"#,
            "wrong_type",
        ),
        record("ts as a boolean", r#"{"ts":true,"uid":"u"}"#, "wrong_type"),
        record(
            "uid as a number",
            format!(r#"{{"ts":{ts},"uid":7}}"#),
            "wrong_type",
        ),
        record(
            "uid null",
            format!(r#"{{"ts":{ts},"uid":null}}"#),
            "wrong_type",
        ),
        record(
            "negative ts",
            r#"{"ts":-1790000000,"uid":"u"}"#,
            "implausible_ts",
        ),
        record(
            "huge integer ts",
            r#"{"ts":123456789012345678901234567890,"uid":"u"}"#,
            "implausible_ts",
        ),
        record(
            "ts decades ahead",
            r#"{"ts":4000000000,"uid":"u"}"#,
            "future_ts",
        ),
    ]
}
