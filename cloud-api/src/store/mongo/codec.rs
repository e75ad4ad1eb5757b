//! How METCON's records become BSON and back, and how driver errors become [`StoreError`]s.
//!
//! Records go through their serde JSON form (the same JSON the SQLite backend stores as text)
//! and a lossless JSON ↔ BSON mapping: integers become `Int64`, decimals stay the exact
//! strings `rust_decimal` writes, timestamps stay the RFC 3339 strings the domain writes.
//! Going through JSON (rather than the BSON serializer) keeps one canonical shape per record
//! on both backends, so an export from either is byte-identical. Scalar columns that are
//! sorted or compared (creation times, expiry times, …) use the SQLite backend's fixed-width
//! UTC form ([`ts`]), whose text order is time order.

use mongodb::bson::{Bson, Document};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::store::{StoreError, StoreResult};

pub(crate) use crate::store::sqlite::{parse_ts, ts};

/// Duplicate key (unique index violation).
pub(crate) const DUPLICATE_KEY: i32 = 11000;

pub(crate) fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

pub(crate) fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// The server error code of a failed command or write, if it is one.
pub(crate) fn error_code(e: &mongodb::error::Error) -> Option<i32> {
    use mongodb::error::{ErrorKind, WriteFailure};
    match e.kind.as_ref() {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        ErrorKind::InsertMany(m) => m
            .write_errors
            .as_ref()
            .and_then(|w| w.first())
            .map(|w| w.code),
        _ => None,
    }
}

pub(crate) fn is_duplicate(e: &mongodb::error::Error) -> bool {
    error_code(e) == Some(DUPLICATE_KEY)
}

/// Maps a driver error: a duplicate key becomes `Duplicate(what)`, anything else `Backend`.
pub(crate) fn map_write(
    what: impl FnOnce() -> String,
) -> impl FnOnce(mongodb::error::Error) -> StoreError {
    move |e| {
        if is_duplicate(&e) {
            StoreError::Duplicate(what())
        } else {
            backend(e)
        }
    }
}

/// JSON → BSON, losslessly for what serde_json produces from METCON's records.
pub(crate) fn json_to_bson(v: &Value) -> StoreResult<Bson> {
    Ok(match v {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Bson::Int64(i)
            } else if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                Bson::Double(f)
            } else {
                // A u64 above i64::MAX: no METCON record has one; refuse rather than round.
                return Err(backend(format!("number {n} does not fit a 64-bit integer")));
            }
        }
        Value::String(s) => Bson::String(s.clone()),
        Value::Array(a) => Bson::Array(a.iter().map(json_to_bson).collect::<StoreResult<_>>()?),
        Value::Object(o) => {
            let mut d = Document::new();
            for (k, v) in o {
                d.insert(k.clone(), json_to_bson(v)?);
            }
            Bson::Document(d)
        }
    })
}

/// BSON → JSON, the inverse of [`json_to_bson`] (also accepting `Int32`, which servers may
/// return for small numbers they computed).
pub(crate) fn bson_to_json(b: &Bson) -> StoreResult<Value> {
    Ok(match b {
        Bson::Null => Value::Null,
        Bson::Boolean(b) => Value::Bool(*b),
        Bson::Int32(i) => Value::from(*i),
        Bson::Int64(i) => Value::from(*i),
        Bson::Double(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .ok_or_else(|| corrupt(format!("non-finite number {f}")))?,
        Bson::String(s) => Value::String(s.clone()),
        Bson::Array(a) => Value::Array(a.iter().map(bson_to_json).collect::<StoreResult<_>>()?),
        Bson::Document(d) => Value::Object(doc_to_json_map(d)?),
        other => return Err(corrupt(format!("unexpected BSON value {other}"))),
    })
}

fn doc_to_json_map(d: &Document) -> StoreResult<serde_json::Map<String, Value>> {
    let mut m = serde_json::Map::new();
    for (k, v) in d {
        m.insert(k.clone(), bson_to_json(v)?);
    }
    Ok(m)
}

/// A record as a BSON document (through its JSON form).
pub(crate) fn to_doc<T: Serialize>(t: &T) -> StoreResult<Document> {
    let v = serde_json::to_value(t).map_err(backend)?;
    match json_to_bson(&v)? {
        Bson::Document(d) => Ok(d),
        other => Err(backend(format!("expected an object, got {other}"))),
    }
}

pub(crate) fn to_bson<T: Serialize>(t: &T) -> StoreResult<Bson> {
    json_to_bson(&serde_json::to_value(t).map_err(backend)?)
}

/// A record from a BSON document; fields the record does not know (e.g. `_id`) must have
/// been removed by the caller when the record denies unknown fields.
pub(crate) fn from_doc<T: DeserializeOwned>(d: &Document) -> StoreResult<T> {
    serde_json::from_value(Value::Object(doc_to_json_map(d)?)).map_err(corrupt)
}

pub(crate) fn from_bson<T: DeserializeOwned>(b: &Bson) -> StoreResult<T> {
    serde_json::from_value(bson_to_json(b)?).map_err(corrupt)
}

// --- typed field access --------------------------------------------------------------------

pub(crate) fn get_str<'a>(d: &'a Document, key: &str) -> StoreResult<&'a str> {
    d.get_str(key)
        .map_err(|_| corrupt(format!("field {key} is missing or not a string")))
}

pub(crate) fn get_opt_str(d: &Document, key: &str) -> StoreResult<Option<String>> {
    match d.get(key) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(corrupt(format!("field {key} is not a string: {other}"))),
    }
}

pub(crate) fn get_int(d: &Document, key: &str) -> StoreResult<i64> {
    match d.get(key) {
        Some(Bson::Int64(i)) => Ok(*i),
        Some(Bson::Int32(i)) => Ok(*i as i64),
        // Sums of nothing may come back as doubles from some servers; only whole ones pass.
        Some(Bson::Double(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(*f as i64),
        Some(other) => Err(corrupt(format!("field {key} is not an integer: {other}"))),
        None => Err(corrupt(format!("field {key} is missing"))),
    }
}

pub(crate) fn get_bool(d: &Document, key: &str) -> StoreResult<bool> {
    d.get_bool(key)
        .map_err(|_| corrupt(format!("field {key} is missing or not a boolean")))
}

pub(crate) fn get_doc<'a>(d: &'a Document, key: &str) -> StoreResult<&'a Document> {
    d.get_document(key)
        .map_err(|_| corrupt(format!("field {key} is missing or not a document")))
}

pub(crate) fn get_time(d: &Document, key: &str) -> StoreResult<OffsetDateTime> {
    parse_ts(get_str(d, key)?)
}

pub(crate) fn get_opt_time(d: &Document, key: &str) -> StoreResult<Option<OffsetDateTime>> {
    get_opt_str(d, key)?.as_deref().map(parse_ts).transpose()
}

/// An optional string as BSON (`null` when absent).
pub(crate) fn opt_str(v: Option<&str>) -> Bson {
    v.map(|s| Bson::String(s.to_string())).unwrap_or(Bson::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_survives_the_trip_through_bson() {
        let v = serde_json::json!({
            "b": [1, -2, 9_007_199_254_740_993_i64, 1.5, "148.30", null, true],
            "a": {"z": "x", "seq": 18},
        });
        let back = bson_to_json(&json_to_bson(&v).expect("to bson")).expect("to json");
        assert_eq!(back, v);
        assert_eq!(
            serde_json::to_string(&back).ok(),
            serde_json::to_string(&v).ok()
        );
        assert!(json_to_bson(&serde_json::json!(u64::MAX)).is_err());
    }
}
