//! Borrowed JSON: an object's top-level fields as raw text, read without
//! building a tree, and an object written from raw parts.
//!
//! The per-record path only ever looks at an envelope's top-level fields and
//! hands `data` on as text. Parsing the whole record into a `Value` tree and
//! writing `data` back out cost an allocation per nested key and value on
//! every record (BENCHMARKS.md, P1); here each field is a slice of the
//! record, checked to be valid JSON but not taken apart. A payload is handed
//! on verbatim (whitespace and escapes as the producer wrote them), which
//! any JSON reader reads as the same value.

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// A JSON object's top-level fields in their order, each value as its raw
/// text. A key given twice keeps both; [`Fields::get`] reads the last, as a
/// `Value` map would.
#[derive(Debug, Default)]
pub(crate) struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> Fields<'a> {
    /// Reads `text` as a JSON object: `Ok(None)` when it is JSON but not an
    /// object, an error when it is not JSON.
    ///
    /// The bytes are checked to be UTF-8 once, up front, and read as text:
    /// read as bytes, serde_json checks each string and each raw value
    /// again, which cost a sixth of an envelope's decoding (BENCHMARKS.md,
    /// item 21). Bytes that are not UTF-8 are read as bytes, for serde_json's
    /// error with its position.
    pub(crate) fn parse(text: &'a [u8]) -> Result<Option<Self>, serde_json::Error> {
        match std::str::from_utf8(text) {
            Ok(text) => Self::parse_str(text),
            Err(_) => Ok(Self::top(serde_json::from_slice(text)?)),
        }
    }

    /// [`Fields::parse`] of text.
    pub(crate) fn parse_str(text: &'a str) -> Result<Option<Self>, serde_json::Error> {
        Ok(Self::top(serde_json::from_str(text)?))
    }

    fn top(top: Top<'a>) -> Option<Self> {
        match top {
            Top::Object(fields) => Some(fields),
            Top::Other => None,
        }
    }

    /// Reads a raw value that is already known to be JSON; `None` when it is
    /// not an object.
    pub(crate) fn of(raw: &'a RawValue) -> Option<Self> {
        Self::parse_str(raw.get()).ok().flatten()
    }

    /// The raw value of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// Whether the object has `key`.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// `key` as text: a string's contents, any other value but `null` as
    /// compact JSON.
    pub(crate) fn text(&self, key: &str) -> Option<String> {
        text(self.get(key)?)
    }

    /// The fields as a `Value` map holds them: each key once, where it
    /// first stands, with the value it was given last.
    pub(crate) fn unique(&self) -> impl Iterator<Item = (&str, &'a RawValue)> {
        self.0.iter().enumerate().filter_map(|(i, (key, _))| {
            let first = !self.0[..i].iter().any(|(k, _)| k == key);
            Some((key.as_ref(), self.get(key)?)).filter(|_| first)
        })
    }
}

/// A raw value as text: a string's contents, any other value but `null` as
/// compact JSON.
pub(crate) fn text(raw: &RawValue) -> Option<String> {
    let s = raw.get();
    match s.as_bytes().first() {
        Some(b'"') => serde_json::from_str(s).ok(),
        Some(b'n') => None,
        Some(b'{' | b'[') => serde_json::from_str::<serde_json::Value>(s)
            .ok()
            .map(|v| v.to_string()),
        _ => Some(s.to_string()),
    }
}

/// A JSON object written field by field, from text and raw values.
pub(crate) struct Object(Vec<u8>);

impl Object {
    /// An empty object, with room for `capacity` bytes.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity);
        out.push(b'{');
        Object(out)
    }

    fn key(&mut self, key: &str) {
        if self.0.len() > 1 {
            self.0.push(b',');
        }
        string(&mut self.0, key);
        self.0.push(b':');
    }

    /// Adds a string field.
    pub(crate) fn text(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        string(&mut self.0, value);
        self
    }

    /// Adds a field whose value is JSON text already.
    pub(crate) fn raw(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        self.0.extend_from_slice(value.as_bytes());
        self
    }

    /// Adds a field whose value is another object.
    pub(crate) fn object(&mut self, key: &str, value: Object) -> &mut Self {
        self.key(key);
        self.0.extend_from_slice(&value.finish());
        self
    }

    /// The object's text.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.0.push(b'}');
        self.0
    }

    /// The object's text, as a string.
    pub(crate) fn finish_text(self) -> String {
        // Every byte came from a `str` or from JSON text serde_json checked.
        String::from_utf8(self.finish()).expect("JSON text is UTF-8")
    }
}

/// Writes `s` as a JSON string.
fn string(out: &mut Vec<u8>, s: &str) {
    // Writing a `str` into a `Vec` cannot fail.
    let _ = serde_json::to_writer(out, s);
}

/// A document's top level: an object's fields, or anything else.
enum Top<'a> {
    Object(Fields<'a>),
    Other,
}

impl<'de> Deserialize<'de> for Top<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TopVisitor)
    }
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(Key(key)) = map.next_key()? {
            fields.push((key, map.next_value::<&'de RawValue>()?));
        }
        Ok(Top::Object(Fields(fields)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Top::Other)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Top::Other)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Top::Other)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Top::Other)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Top::Other)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Top::Other)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Top::Other)
    }
}

/// An object key, borrowed from the input unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }

            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(s)))
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(s.to_string())))
            }

            fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_top_level_fields_without_taking_values_apart() {
        let text = br#" {"a": "x\"y", "b": {"c": [1, 2]}, "n": null, "k": 7, "a": "last"} "#;
        let f = Fields::parse(text).unwrap().unwrap();
        assert_eq!(f.get("b").unwrap().get(), r#"{"c": [1, 2]}"#);
        assert_eq!(f.text("a").as_deref(), Some("last"));
        assert_eq!(f.text("b").as_deref(), Some(r#"{"c":[1,2]}"#));
        assert_eq!(f.text("n"), None);
        assert_eq!(f.text("k").as_deref(), Some("7"));
        assert!(f.has("n") && !f.has("z"));
        let unique: Vec<_> = f.unique().map(|(k, v)| (k, v.get())).collect();
        assert_eq!(
            unique,
            [
                ("a", r#""last""#),
                ("b", r#"{"c": [1, 2]}"#),
                ("n", "null"),
                ("k", "7")
            ]
        );
    }

    #[test]
    fn tells_json_that_is_not_an_object_from_text_that_is_not_json() {
        for other in [&b"[1, {\"a\": 2}]"[..], b"\"s\"", b"1.5", b"true", b"null"] {
            assert!(Fields::parse(other).unwrap().is_none(), "{other:?}");
        }
        for bad in [
            &b"not json"[..],
            b"{\"a\": }",
            b"{} {}",
            b"",
            b"{\"a\": \"\xff\"}",
        ] {
            assert!(Fields::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn escaped_keys_are_read() {
        let f = Fields::parse(br#"{"a\u0062": 1}"#).unwrap().unwrap();
        assert_eq!(f.text("ab").as_deref(), Some("1"));
    }

    #[test]
    fn writes_an_object() {
        let mut o = Object::with_capacity(16);
        o.text("a", "q\"").raw("b", r#"{"c": 1}"#);
        let v: serde_json::Value = serde_json::from_slice(&o.finish()).unwrap();
        assert_eq!(v, serde_json::json!({"a": "q\"", "b": {"c": 1}}));
        assert_eq!(Object::with_capacity(0).finish(), b"{}");
    }
}
