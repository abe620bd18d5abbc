//! Checkpoint rows: one per projection, moved in the same transaction as its writes. Inside a batch the
//! table is found through the transaction's `search_path` (`read`, or a rebuild's shadow schema); outside
//! one it is always `read.checkpoints`.

use shared::store::position::LogPosition;
use sqlx::PgConnection;

/// Makes sure the projection's row exists.
async fn ensure(conn: &mut PgConnection, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query!("insert into checkpoints (name) values ($1) on conflict (name) do nothing", name)
        .execute(conn)
        .await?;
    Ok(())
}

/// Loads and locks the checkpoint for the rest of the transaction, creating it (at the start of the log)
/// the first time.
pub async fn load_for_update(conn: &mut PgConnection, name: &str) -> Result<LogPosition, sqlx::Error> {
    for _ in 0..2 {
        let row = sqlx::query!(
            r#"select transaction_id::text::bigint as "tx!", global_position from checkpoints where name = $1 for update"#,
            name
        )
        .fetch_optional(&mut *conn)
        .await?;
        match row {
            Some(row) => return Ok(LogPosition::new(row.tx, row.global_position)),
            None => ensure(&mut *conn, name).await?,
        }
    }
    Err(sqlx::Error::RowNotFound)
}

/// Moves the checkpoint and marks the projection running.
pub async fn advance(conn: &mut PgConnection, name: &str, to: LogPosition) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update checkpoints set transaction_id = $2::bigint::text::xid8, global_position = $3,
                state = 'running', error = null, updated_at = now()
         where name = $1",
        name,
        to.transaction_id,
        to.global_position
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Records that the projection is halted at an event it cannot apply.
pub async fn mark_failed(conn: &mut PgConnection, name: &str, error: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update read.checkpoints set state = 'failed', error = $2, updated_at = now() where name = $1",
        name,
        error
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The checkpoint as last committed (no lock).
pub async fn current(conn: &mut PgConnection, name: &str) -> Result<Option<LogPosition>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select transaction_id::text::bigint as "tx!", global_position from read.checkpoints where name = $1"#,
        name
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| LogPosition::new(r.tx, r.global_position)))
}

/// Where the after-commit effects are known to have landed; None when never recorded (treated as
/// the checkpoint itself: nothing to redo).
pub async fn effects(conn: &mut PgConnection, name: &str) -> Result<Option<LogPosition>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select effects_transaction_id::text::bigint as tx, effects_position as pos
           from read.checkpoints where name = $1"#,
        name
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.and_then(|r| Some(LogPosition::new(r.tx?, r.pos?))))
}

/// Records that the after-commit effects of everything up to `to` have landed.
pub async fn set_effects(conn: &mut PgConnection, name: &str, to: LogPosition) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update read.checkpoints set effects_transaction_id = $2::bigint::text::xid8, effects_position = $3
         where name = $1",
        name,
        to.transaction_id,
        to.global_position
    )
    .execute(conn)
    .await?;
    Ok(())
}
