//! The rebuild's last step, in the transaction that holds the live checkpoint: carry over the columns
//! other projections keep, compare every table with live (row count and checksum), and swap the shadow
//! tables in; the retired live tables are dropped once that has committed.

use shared::store::db::LIVE_SCHEMA;
use sqlx::{PgConnection, PgPool};

use super::shadow::checksum;
use super::{RebuildError, TableCheck, FOREIGN_COLUMNS, POSTS_TABLES};

/// Carries the columns other projections keep over from live and compares every table with live, in `tx`
/// (which holds the live checkpoint). Live is frozen from here: its writers wait for `tx`.
pub(super) async fn compare(
    tx: &mut PgConnection,
    pool: &PgPool,
    shadow: &str,
    accept_changes: bool,
) -> Result<Vec<TableCheck>, RebuildError> {
    let tables_sql = live_tables().join(", ");
    // Writers of the live tables (the comments projection's counts) wait from here; readers do not.
    sqlx::query(&format!("lock table {tables_sql} in exclusive mode")).execute(&mut *tx).await?;
    let carry_over = async {
        for (table, column) in FOREIGN_COLUMNS {
            sqlx::query(&format!(
                "update {shadow}.{table} s set {column} = l.{column} from {LIVE_SCHEMA}.{table} l
                 where l.id = s.id and s.{column} is distinct from l.{column}"
            ))
            .execute(&mut *tx)
            .await?;
        }
        Ok::<_, sqlx::Error>(())
    };
    // Both checksums leave out the carried columns, and live cannot change while `tx` holds its lock: they
    // run on two other connections, each copy at once and beside the carry-over.
    let checksums = async {
        let (mut live_conn, mut shadow_conn) = (pool.acquire().await?, pool.acquire().await?);
        let mut tables = Vec::new();
        for table in POSTS_TABLES {
            let (live, rebuilt) =
                tokio::join!(checksum(&mut live_conn, LIVE_SCHEMA, table), checksum(&mut shadow_conn, shadow, table));
            let ((live_rows, live_checksum), (rebuilt_rows, rebuilt_checksum)) = (live?, rebuilt?);
            tables.push(TableCheck {
                table: table.to_string(),
                live_rows,
                rebuilt_rows,
                live_checksum,
                rebuilt_checksum,
            });
        }
        Ok::<_, sqlx::Error>(tables)
    };
    let (carried, tables) = tokio::join!(carry_over, checksums);
    carried?;
    let tables = tables?;
    if !accept_changes {
        if let Some(check) =
            tables.iter().find(|c| (c.live_rows, &c.live_checksum) != (c.rebuilt_rows, &c.rebuilt_checksum))
        {
            return Err(RebuildError::Mismatch {
                table: check.table.clone(),
                live_rows: check.live_rows,
                live_checksum: check.live_checksum.clone(),
                rebuilt_rows: check.rebuilt_rows,
                rebuilt_checksum: check.rebuilt_checksum.clone(),
            });
        }
    }
    Ok(tables)
}

/// Moves the live tables into `retired` and the shadow tables into the live schema, in `tx`. The live
/// tables are not dropped here: dropping a table truncates its files when the transaction commits (a second
/// and more for 200,000 posts, on the primary and again on each replica replaying it), and that commit is
/// what live's writers wait for. [`drop_retired`] drops them after.
pub(super) async fn swap(tx: &mut PgConnection, shadow: &str, retired: &str) -> Result<(), RebuildError> {
    // A view over a live table would follow it into `retired` and be dropped with it: refuse instead, as
    // dropping the live tables here would.
    let dependents = sqlx::query_scalar::<_, String>(
        "select distinct v.oid::regclass::text from pg_depend d
         join pg_rewrite r on r.oid = d.objid join pg_class v on v.oid = r.ev_class
         where d.classid = 'pg_rewrite'::regclass and d.refobjid = any($1::text[]::regclass[])",
    )
    .bind(live_tables())
    .fetch_all(&mut *tx)
    .await?;
    if !dependents.is_empty() {
        return Err(RebuildError::Dependents(dependents.join(", ")));
    }
    sqlx::query(&format!("create schema {retired}")).execute(&mut *tx).await?;
    for table in POSTS_TABLES {
        sqlx::query(&format!("alter table {LIVE_SCHEMA}.{table} set schema {retired}")).execute(&mut *tx).await?;
        sqlx::query(&format!("alter table {shadow}.{table} set schema {LIVE_SCHEMA}")).execute(&mut *tx).await?;
        sqlx::query(&format!("grant select, insert, update, delete on {LIVE_SCHEMA}.{table} to pressroom_app"))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(&format!("drop schema {shadow} cascade")).execute(&mut *tx).await?;
    Ok(())
}

/// The live tables the projection owns, schema-qualified.
fn live_tables() -> Vec<String> {
    POSTS_TABLES.iter().map(|t| format!("{LIVE_SCHEMA}.{t}")).collect()
}

/// Drops the tables a swap retired, and their schema (left over by an interrupted rebuild, too).
pub(super) async fn drop_retired(pool: &PgPool, retired: &str) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("drop schema if exists {retired} cascade")).execute(pool).await?;
    Ok(())
}
