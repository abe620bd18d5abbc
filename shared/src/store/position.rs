//! Positions in projection order. A client sees only `global_position`; the server compares positions
//! by (transaction_id, global_position), the order in which projections apply events.

use axum::http::HeaderName;
use serde::{Deserialize, Serialize};

/// A point in the log in projection order. The derived ordering is lexicographic: transaction first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LogPosition {
    /// `events.transaction_id` (xid8) of the event, as a 64-bit integer.
    pub transaction_id: i64,
    pub global_position: i64,
}

impl LogPosition {
    pub const START: LogPosition = LogPosition { transaction_id: 0, global_position: 0 };

    pub fn new(transaction_id: i64, global_position: i64) -> Self {
        Self { transaction_id, global_position }
    }

    /// True when data projected up to `self` includes the event at `token`.
    pub fn reached(&self, token: &LogPosition) -> bool {
        self >= token
    }
}

// Header names as `HeaderName` constants: a `&str` name is parsed again on every insert.

/// The `Pressroom-Position` header: the consistency token of a write or of the data a read served.
pub const POSITION_HEADER: HeaderName = HeaderName::from_static("pressroom-position");
/// The `Pressroom-Min-Position` request header: read-your-writes.
pub const MIN_POSITION_HEADER: HeaderName = HeaderName::from_static("pressroom-min-position");
/// The `Pressroom-Read-Source` response header: cache, replica, primary or events.
pub const READ_SOURCE_HEADER: HeaderName = HeaderName::from_static("pressroom-read-source");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_committing_transaction_orders_before_higher_positions_of_later_transactions() {
        let late = LogPosition::new(100, 50);
        let later_tx = LogPosition::new(101, 10);
        assert!(later_tx > late, "projection order is by transaction first");
        assert!(later_tx.reached(&late));
        assert!(!late.reached(&later_tx));
    }
}
