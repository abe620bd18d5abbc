//! Physical backup and point-in-time restore (`pressroom-ops backup` / `restore`) on the test topology,
//! whose primary archives its WAL into `$PRESSROOM_TEST_TOPOLOGY_DIR/wal-archive`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use pressroom_tests::{free_port, Stack, TestDb};
use shared::domain::role::Role;

async fn titles(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar("select payload->>'title' from events where event_type = 'PostDrafted' order by global_position")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_restore_to_a_point_in_time_has_every_event_before_it_and_the_projector_resumes_without_skips() {
    let topology = std::env::var("PRESSROOM_TEST_TOPOLOGY_DIR").expect("run through ./ops/test");
    let mut stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    for i in 0..3 {
        stack.published_post(&token, &format!("Before the backup {i}")).await;
    }
    let work = std::env::temp_dir().join(format!("pressroom-backup-{}", uuid::Uuid::now_v7().simple()));
    let backup = work.join("backup");
    let out = stack.db.ops(&["backup", "--to", backup.to_str().unwrap()]).output().await.unwrap();
    assert!(out.status.success(), "backup failed: {}", String::from_utf8_lossy(&out.stderr));

    for i in 0..3 {
        stack.published_post(&token, &format!("After the backup {i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let target = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for i in 0..3 {
        stack.published_post(&token, &format!("After the target {i}")).await;
    }
    // Close the WAL segment holding all of it, and wait until the archive has it.
    let segment: String =
        sqlx::query_scalar("select pg_walfile_name(pg_switch_wal())").fetch_one(&stack.db.admin).await.unwrap();
    for attempt in 0.. {
        let archived: Option<String> = sqlx::query_scalar("select last_archived_wal from pg_stat_archiver")
            .fetch_one(&stack.db.admin)
            .await
            .unwrap();
        if archived.is_some_and(|a| a >= segment) {
            break;
        }
        assert!(attempt < 300, "segment {segment} was never archived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The projector stops here: what it projected after the target is not in the restored cluster either.
    stack.kill_projector().await;

    let port = free_port();
    let restored = work.join("restored");
    let out = stack
        .db
        .ops(&[
            "restore",
            "--from",
            backup.to_str().unwrap(),
            "--wal-archive",
            &format!("{topology}/wal-archive"),
            "--to",
            restored.to_str().unwrap(),
            "--target-time",
            &target.to_rfc3339(),
            "--port",
            &port.to_string(),
        ])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "restore failed: {}", String::from_utf8_lossy(&out.stderr));
    let stop_restored = || {
        let _ = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_ctl", "-D"])
            .arg(&restored)
            .args(["-m", "immediate", "stop"])
            .output();
    };

    let name = &stack.db.name;
    let admin = sqlx::PgPool::connect(&format!("postgres://postgres@127.0.0.1:{port}/{name}")).await.unwrap();
    let before: Vec<String> = (0..3)
        .map(|i| format!("Before the backup {i}"))
        .chain((0..3).map(|i| format!("After the backup {i}")))
        .collect();
    let got = titles(&admin).await;
    for t in &before {
        assert!(got.contains(t), "{t} is missing from the restore: {got:?}");
    }
    assert!(!got.iter().any(|t| t.starts_with("After the target")), "events after the target came back: {got:?}");

    // A projector on the restored cluster resumes from its restored checkpoints and skips nothing.
    let app_url = format!("postgres://pressroom_app@127.0.0.1:{port}/{name}");
    let mut projector = tokio::process::Command::new(pressroom_tests::bin("pressroom-projector"))
        .env("DATABASE_PRIMARY_URL", &app_url)
        .env("DATABASE_PRIMARY_DIRECT_URL", &app_url)
        .env("DATABASE_REPLICA_URLS", &app_url)
        .env("REDIS_URL", &stack.db.redis_url)
        .env("PRESSROOM_REDIS_PREFIX", format!("{name}-restored"))
        .env("PRESSROOM_JWT_SECRET", "test-secret-not-for-production-use")
        .env("PRESSROOM_PROJECTOR_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("PRESSROOM_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let head: i64 = sqlx::query_scalar("select max(global_position) from events").fetch_one(&admin).await.unwrap();
    for attempt in 0.. {
        let behind: i64 = sqlx::query_scalar(
            "select count(*) from read.checkpoints where name in ('posts', 'comments') and global_position < $1",
        )
        .bind(head)
        .fetch_one(&admin)
        .await
        .unwrap();
        if behind == 0 {
            break;
        }
        assert!(attempt < 300, "the projector did not reach the restored head {head}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let published: Vec<String> =
        sqlx::query_scalar("select title from read.posts where status = 'published' order by title")
            .fetch_all(&admin)
            .await
            .unwrap();
    let mut expected = before.clone();
    expected.sort();
    assert_eq!(published, expected);
    let skipped: i64 = sqlx::query_scalar("select count(*) from projection_skips").fetch_one(&admin).await.unwrap();
    assert_eq!(skipped, 0);
    let failed: i64 = sqlx::query_scalar("select count(*) from read.checkpoints where state <> 'running'")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(failed, 0);

    let _ = projector.kill().await;
    admin.close().await;
    stop_restored();
    let _ = std::fs::remove_dir_all(&work);
    stack.stop().await;
}
