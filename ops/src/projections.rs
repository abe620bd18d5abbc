//! `pressroom-ops projections …` and `replicas …`: checkpoints, lag, skipping a poison event (audited),
//! and replica health as the primary sees it.

use serde::Serialize;
use sqlx::PgPool;

/// `projections status [--json]`.
pub async fn status(pool: &PgPool, json: bool) -> anyhow::Result<()> {
    let statuses = shared::store::projections::status(pool).await?;
    if json {
        println!("{}", serde_json::json!({ "projections": statuses }));
        return Ok(());
    }
    println!(
        "{:<12} {:>10} {:>10} {:>10} {:>10}  {:<10} state",
        "projection", "position", "head", "lag", "lag_s", "leader"
    );
    for s in statuses {
        let error = s.error.map(|e| format!(" ({e})")).unwrap_or_default();
        println!(
            "{:<12} {:>10} {:>10} {:>10} {:>10.1}  {:<10} {}{error}",
            s.name,
            s.position,
            s.head,
            s.lag_events,
            s.lag_seconds,
            s.leader.as_deref().unwrap_or("-"),
            s.state
        );
        for sub in s.subscriptions.unwrap_or_default() {
            let error = sub.last_error.map(|e| format!(" ({} tries: {e})", sub.attempts)).unwrap_or_default();
            println!(
                "  {:<10} {:>10} {:>10} {:>10} {:>10.1}  {}{error}",
                "↳ hook", sub.position, "", sub.lag_events, sub.lag_seconds, sub.url
            );
        }
    }
    Ok(())
}

/// Who runs this command: `SUDO_USER` (a sudo's real user), else the name of the process's user id from
/// /etc/passwd, else `uid <n>` — never "unknown" because `USER` is unset (cron, systemd, containers).
pub fn operating_user() -> String {
    if let Ok(user) = std::env::var("SUDO_USER") {
        return user;
    }
    let uid = std::fs::read_to_string("/proc/self/status").ok().and_then(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().next().map(str::to_string))
    });
    let Some(uid) = uid else { return std::env::var("USER").unwrap_or_else(|_| "unknown".into()) };
    let name = std::fs::read_to_string("/etc/passwd").ok().and_then(|passwd| {
        passwd.lines().find_map(|l| {
            let fields: Vec<&str> = l.split(':').collect();
            (fields.get(2) == Some(&uid.as_str())).then(|| fields[0].to_string())
        })
    });
    name.unwrap_or_else(|| format!("uid {uid}"))
}

/// `projections skip <name> <position> --reason TEXT`: moves the checkpoint past exactly that event,
/// which must be the next one the projection would apply, and records who skipped what and why.
pub async fn skip(pool: &PgPool, name: &str, position: i64, reason: &str, operator: &str) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    let checkpoint = sqlx::query!(
        r#"select transaction_id::text::bigint as "tx!", global_position, error from read.checkpoints where name = $1 for update"#,
        name
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| anyhow::anyhow!("no projection named {name}"))?;
    let next = sqlx::query!(
        r#"select global_position, transaction_id::text::bigint as "tx!", event_id, event_type from events
           where (transaction_id, global_position) > ($1::bigint::text::xid8, $2)
             and transaction_id < pg_snapshot_xmin(pg_current_snapshot())
           order by transaction_id, global_position limit 1"#,
        checkpoint.tx,
        checkpoint.global_position
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| anyhow::anyhow!("{name} is at the head; nothing to skip"))?;
    if next.global_position != position {
        anyhow::bail!("the next event {name} would apply is at position {}, not {position}", next.global_position);
    }
    sqlx::query!(
        "insert into projection_skips (projection, global_position, event_id, event_type, reason, skipped_by, error)
         values ($1, $2, $3, $4, $5, $6, $7)",
        name,
        position,
        next.event_id,
        next.event_type,
        reason,
        operator,
        checkpoint.error
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "update read.checkpoints set transaction_id = $2::bigint::text::xid8, global_position = $3,
                state = 'running', error = null, updated_at = now()
         where name = $1",
        name,
        next.tx,
        position
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    println!("{name}: skipped {} at position {position} ({reason}); recorded by {operator}", next.event_type);
    Ok(())
}

#[derive(Serialize)]
struct ReplicaStatus {
    name: String,
    healthy: bool,
    lag_bytes: i64,
    lag_seconds: f64,
}

/// `replicas status [--json]`: each replica named by its replication slot (`replica1`, as `/ready` and the
/// metrics name it), else its application name or address.
pub async fn replicas(pool: &PgPool, json: bool) -> anyhow::Result<()> {
    let rows = sqlx::query!(
        r#"select coalesce((select s.slot_name::text from pg_replication_slots s where s.active_pid = r.pid),
                           r.application_name, r.client_addr::text, 'replica') as "name!",
                  r.state = 'streaming' as "healthy!",
                  coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn), 0)::bigint as "lag_bytes!",
                  coalesce(extract(epoch from r.replay_lag), 0)::float8 as "lag_seconds!"
           from pg_stat_replication r order by 1"#
    )
    .fetch_all(pool)
    .await?;
    let replicas: Vec<ReplicaStatus> = rows
        .into_iter()
        .map(|r| ReplicaStatus { name: r.name, healthy: r.healthy, lag_bytes: r.lag_bytes, lag_seconds: r.lag_seconds })
        .collect();
    if json {
        println!("{}", serde_json::json!({ "replicas": replicas }));
        return Ok(());
    }
    println!("{:<16} {:>8} {:>12} {:>10}", "replica", "healthy", "lag_bytes", "lag_s");
    for r in replicas {
        println!("{:<16} {:>8} {:>12} {:>10.3}", r.name, r.healthy, r.lag_bytes, r.lag_seconds);
    }
    Ok(())
}

/// `events tail [--stream ID] [--limit N]`: the newest events, oldest first, one JSON line each.
pub async fn tail(pool: &PgPool, stream: Option<uuid::Uuid>, limit: i64) -> anyhow::Result<()> {
    let rows = sqlx::query!(
        r#"select * from (
               select global_position, stream_id, version, event_type, payload, metadata, recorded_at from events
               where ($1::uuid is null or stream_id = $1) order by global_position desc limit $2
           ) newest order by global_position"#,
        stream,
        limit
    )
    .fetch_all(pool)
    .await?;
    for r in rows {
        let line = serde_json::json!({
            "global_position": r.global_position, "stream_id": r.stream_id, "version": r.version,
            "event_type": r.event_type, "recorded_at": r.recorded_at, "payload": r.payload, "metadata": r.metadata,
        });
        println!("{line}");
    }
    Ok(())
}

/// Progress bars for a rebuild: one per phase, with events/s while folding.
struct Bars {
    current: std::sync::Mutex<Option<indicatif::ProgressBar>>,
    hidden: bool,
}

impl pressroom_projector::rebuild::Progress for Bars {
    fn phase(&self, name: &str, total: Option<u64>) {
        let bar = if self.hidden {
            indicatif::ProgressBar::hidden()
        } else if let Some(total) = total {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg:>22} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} ({per_sec}, eta {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        } else {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        };
        bar.set_message(name.to_string());
        if let Ok(mut current) = self.current.lock() {
            if let Some(done) = current.replace(bar) {
                done.finish();
            }
        }
    }

    fn advance(&self, n: u64) {
        if let Ok(current) = self.current.lock() {
            if let Some(bar) = current.as_ref() {
                bar.inc(n);
            }
        }
    }
}

/// `projections rebuild <name> [--accept-changes] [--json]`.
pub async fn rebuild(
    pool: &PgPool,
    name: &str,
    accept_changes: bool,
    json: bool,
    redis_url: String,
    redis_keys: shared::read::redis_keys::RedisKeys,
) -> anyhow::Result<()> {
    use pressroom_projector::rebuild::{self, RebuildOptions};
    let bars = Bars { current: std::sync::Mutex::new(None), hidden: json };
    let options = RebuildOptions { accept_changes, redis_url, redis_keys };
    let result = rebuild::rebuild(pool, name, &options, &bars).await;
    if let Ok(mut current) = bars.current.lock() {
        if let Some(bar) = current.take() {
            bar.finish();
        }
    }
    let report = result?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "rebuilt {} at position {}: {} events read, folded, written and indexed in {:.1} s ({:.0} events/s; \
         the phases below split it), {} caught up, {:.1} s in all",
        report.projection,
        report.position,
        report.folded_events,
        report.fold_seconds,
        report.events_per_second(),
        report.caught_up_events,
        report.total_seconds
    );
    let phases: Vec<String> = report.phases.iter().map(|(name, s)| format!("{name} {s:.1} s")).collect();
    println!("phases: {}", phases.join(", "));
    println!("{:<14} {:>10} {:>10}  checksum", "table", "live", "rebuilt");
    for t in &report.tables {
        let same = if t.live_checksum == t.rebuilt_checksum { "same" } else { "CHANGED (accepted)" };
        println!("{:<14} {:>10} {:>10}  {same}", t.table, t.live_rows, t.rebuilt_rows);
    }
    match report.redis_namespace {
        Some(ns) => println!("Redis namespace is now {ns}"),
        None => println!("Redis unreachable: namespace not bumped; cached posts expire by TTL"),
    }
    Ok(())
}
