//! Keyset pagination shared by every list read: the `limit` parameter, the `cursor` parameter, and the
//! limit+1 fetch that tells whether there is a next page.

use std::collections::HashMap;

use shared::domain::values::FieldError;

use crate::error::{ReadError, ReadResult};

const DEFAULT_LIMIT: i64 = 20;
const MAX_LIMIT: i64 = 100;

/// `limit`: 1 to 100, default 20; anything else is a 422.
pub fn limit(params: &HashMap<String, String>) -> ReadResult<i64> {
    let Some(raw) = params.get("limit") else {
        return Ok(DEFAULT_LIMIT);
    };
    match raw.parse::<i64>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(ReadError::Validation(vec![FieldError::new(
            "limit",
            format!("must be a whole number from 1 to {MAX_LIMIT}"),
        )])),
    }
}

/// `cursor`, decoded by the list's own format: absent or empty → None, malformed → 400.
pub fn cursor<T>(params: &HashMap<String, String>, decode: impl Fn(&str) -> Option<T>) -> ReadResult<Option<T>> {
    decode_cursor(params.get("cursor").map(String::as_str), decode)
}

/// A cursor as a client sent it (a query parameter, a tool argument): absent or empty → None, malformed → 400.
pub fn decode_cursor<T>(raw: Option<&str>, decode: impl Fn(&str) -> Option<T>) -> ReadResult<Option<T>> {
    match raw.filter(|c| !c.is_empty()) {
        Some(c) => decode(c).map(Some).ok_or_else(|| ReadError::BadRequest("malformed cursor".into())),
        None => Ok(None),
    }
}

/// Cuts rows fetched with `limit + 1` down to the page, and returns the cursor of its last row when
/// there is a next page.
pub fn next_cursor<T>(rows: &mut Vec<T>, limit: i64, encode: impl Fn(&T) -> Option<String>) -> Option<String> {
    if rows.len() as i64 <= limit {
        return None;
    }
    rows.truncate(limit as usize);
    rows.last().and_then(encode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_with_one_row_more_than_the_limit_has_a_next_cursor_and_is_cut() {
        let mut rows = vec![1, 2, 3];
        assert_eq!(next_cursor(&mut rows, 2, |r| Some(r.to_string())), Some("2".into()));
        assert_eq!(rows, vec![1, 2]);
        let mut last = vec![1, 2];
        assert_eq!(next_cursor(&mut last, 2, |r| Some(r.to_string())), None);
    }

    #[test]
    fn limits_outside_1_to_100_and_malformed_cursors_are_refused() {
        let p = |k: &str, v: &str| HashMap::from([(k.to_string(), v.to_string())]);
        assert_eq!(limit(&HashMap::new()).ok(), Some(20));
        for bad in ["0", "101", "-1", "x"] {
            assert!(limit(&p("limit", bad)).is_err(), "{bad}");
        }
        assert!(cursor(&p("cursor", "nope"), |_| None::<i64>).is_err());
        assert_eq!(cursor(&p("cursor", ""), |_| None::<i64>).ok(), Some(None));
    }
}
