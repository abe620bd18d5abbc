//! The rebuild's last step, in the transaction that holds the live checkpoint: carry over the columns
//! other projections keep, compare every table with live (row count and checksum), and swap the shadow
//! tables in.

use shared::store::db::LIVE_SCHEMA;
use sqlx::{PgConnection, PgPool};

use super::shadow::checksum;
use super::{RebuildError, TableCheck, FOREIGN_COLUMNS, POSTS_TABLES};

/// Compares the shadow tables with live and, when they agree (or `accept_changes`), moves them into the
/// live schema in `tx`. Readers keep reading live until `tx` commits.
pub(super) async fn compare_and_swap(
    tx: &mut PgConnection,
    pool: &PgPool,
    shadow: &str,
    accept_changes: bool,
) -> Result<Vec<TableCheck>, RebuildError> {
    let tables_sql = POSTS_TABLES.iter().map(|t| format!("{LIVE_SCHEMA}.{t}")).collect::<Vec<_>>().join(", ");
    // Writers of the live tables (the comments projection's counts) wait from here; readers do not.
    sqlx::query(&format!("lock table {tables_sql} in exclusive mode")).execute(&mut *tx).await?;
    for (table, column) in FOREIGN_COLUMNS {
        sqlx::query(&format!(
            "update {shadow}.{table} s set {column} = l.{column} from {LIVE_SCHEMA}.{table} l
             where l.id = s.id and s.{column} is distinct from l.{column}"
        ))
        .execute(&mut *tx)
        .await?;
    }
    let mut tables = Vec::new();
    for table in POSTS_TABLES {
        // The shadow side on another connection at the same time (nothing else writes the shadow).
        let mut other = pool.acquire().await?;
        let (live, rebuilt) = tokio::join!(checksum(&mut *tx, LIVE_SCHEMA, table), checksum(&mut other, shadow, table));
        let ((live_rows, live_checksum), (rebuilt_rows, rebuilt_checksum)) = (live?, rebuilt?);
        let check = TableCheck { table: table.to_string(), live_rows, rebuilt_rows, live_checksum, rebuilt_checksum };
        if (check.live_rows, &check.live_checksum) != (check.rebuilt_rows, &check.rebuilt_checksum) && !accept_changes {
            return Err(RebuildError::Mismatch {
                table: check.table,
                live_rows: check.live_rows,
                live_checksum: check.live_checksum,
                rebuilt_rows: check.rebuilt_rows,
                rebuilt_checksum: check.rebuilt_checksum,
            });
        }
        tables.push(check);
    }
    sqlx::query(&format!("drop table {tables_sql}")).execute(&mut *tx).await?;
    for table in POSTS_TABLES {
        sqlx::query(&format!("alter table {shadow}.{table} set schema {LIVE_SCHEMA}")).execute(&mut *tx).await?;
        sqlx::query(&format!("grant select, insert, update, delete on {LIVE_SCHEMA}.{table} to pressroom_app"))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(&format!("drop schema {shadow} cascade")).execute(&mut *tx).await?;
    Ok(tables)
}
