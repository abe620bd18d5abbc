//! Test harness: a fresh database per test (cloned from the migrated template, visible on the replica),
//! the real service binaries started on free ports, and a small HTTP client with one method per endpoint.
//! Needs the throwaway topology `./ops/test` starts (its ports come in `PRESSROOM_TEST_*`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use shared::domain::role::Role;
use shared::domain::values::Email;
use shared::service::config::Config;
use shared::store::event_store::Metadata;
use shared::write::authors::{self, NewAuthor};
use sqlx::PgPool;
use tokio::process::Command;
use uuid::Uuid;

mod stack;
pub use stack::{ServiceLogs, Stack};

fn port(var: &str) -> u16 {
    std::env::var(var)
        .unwrap_or_else(|_| panic!("{var} is not set: run the tests through ./ops/test"))
        .parse()
        .unwrap_or_else(|_| panic!("{var} is not a port"))
}

/// The services' `PRESSROOM_JWT_SECRET` in tests.
pub const JWT_SECRET: &str = "test-secret-not-for-production-use";

/// A database of its own for one test, on the shared throwaway topology.
pub struct TestDb {
    pub name: String,
    /// Superuser pool on the primary (direct).
    pub admin: PgPool,
    /// The application role through PgBouncer, as the services connect.
    pub primary_url: String,
    /// The application role directly on the primary (LISTEN, advisory locks).
    pub direct_url: String,
    pub replica_url: String,
    pub redis_url: String,
    pub replica_admin_url: String,
    /// Superuser URL on the primary (direct), as operators run `pressroom-ops`.
    pub admin_url: String,
}

impl TestDb {
    /// Clones `pressroom_template` into a fresh database and waits until the replica has it too.
    pub async fn fresh() -> TestDb {
        let (p, r, b, redis) = (
            port("PRESSROOM_TEST_PRIMARY_PORT"),
            port("PRESSROOM_TEST_REPLICA_PORT"),
            port("PRESSROOM_TEST_PGBOUNCER_PORT"),
            port("PRESSROOM_TEST_REDIS_PORT"),
        );
        let name = format!("t_{}", Uuid::now_v7().simple());
        let postgres = PgPool::connect(&format!("postgres://postgres@127.0.0.1:{p}/postgres")).await.unwrap();
        sqlx::query(&format!("create database {name} template pressroom_template")).execute(&postgres).await.unwrap();
        postgres.close().await;
        let admin = PgPool::connect(&format!("postgres://postgres@127.0.0.1:{p}/{name}")).await.unwrap();
        let replica_url = format!("postgres://pressroom_app@127.0.0.1:{r}/{name}");
        for _ in 0..100 {
            if <sqlx::PgConnection as sqlx::Connection>::connect(&replica_url).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        TestDb {
            primary_url: format!("postgres://pressroom_app@127.0.0.1:{b}/{name}"),
            direct_url: format!("postgres://pressroom_app@127.0.0.1:{p}/{name}"),
            replica_admin_url: format!("postgres://postgres@127.0.0.1:{r}/{name}"),
            admin_url: format!("postgres://postgres@127.0.0.1:{p}/{name}"),
            replica_url,
            redis_url: format!("redis://127.0.0.1:{redis}"),
            admin,
            name,
        }
    }

    /// The services' configuration for this database.
    pub fn config(&self, extra: &[(&str, &str)]) -> Config {
        let mut env: HashMap<String, String> = self.env().into_iter().collect();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Config::from_lookup(|k| env.get(k).cloned()).unwrap()
    }

    /// This database's media store (a directory of its own).
    pub fn media_dir(&self) -> PathBuf {
        std::env::temp_dir().join("pressroom-test-media").join(&self.name)
    }

    /// The services' environment for this database (as `Stack` passes it).
    pub fn config_env(&self) -> Vec<(String, String)> {
        self.env()
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("DATABASE_PRIMARY_URL".into(), self.primary_url.clone()),
            ("DATABASE_PRIMARY_DIRECT_URL".into(), self.direct_url.clone()),
            ("DATABASE_REPLICA_URLS".into(), self.replica_url.clone()),
            ("REDIS_URL".into(), self.redis_url.clone()),
            ("PRESSROOM_JWT_SECRET".into(), JWT_SECRET.into()),
            ("PRESSROOM_PROJECTOR_POLL_INTERVAL".into(), "100ms".into()),
            ("PRESSROOM_MEDIA_STORE".into(), self.media_dir().display().to_string()),
            // Tests share one Redis: each database gets keys and channels of its own.
            ("PRESSROOM_REDIS_PREFIX".into(), self.name.clone()),
        ]
    }

    /// `pressroom-ops` as an operator runs it against this database (and its Redis keys).
    pub fn ops(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("pressroom-ops"));
        cmd.args(args)
            .env("DATABASE_ADMIN_URL", &self.admin_url)
            .env("REDIS_URL", &self.redis_url)
            .env("PRESSROOM_REDIS_PREFIX", &self.name)
            .kill_on_drop(true);
        cmd
    }

    /// Seeds `posts` published posts by 4 authors with `pressroom-ops seed` (4 writers); panics if it fails.
    pub async fn seed(&self, posts: u32) {
        let out = self.ops(&["seed", "--posts", &posts.to_string(), "--authors", "4", "--concurrency", "4"]).output();
        let out = out.await.unwrap();
        assert!(out.status.success(), "seed failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// The newest position in the log.
    pub async fn head(&self) -> i64 {
        sqlx::query_scalar("select max(global_position) from events").fetch_one(&self.admin).await.unwrap()
    }

    /// Posts whose search vector is not what their text and status make it now (reused by a rebuild or kept
    /// across an edit, it must still be).
    pub async fn stale_search_vectors(&self) -> i64 {
        sqlx::query_scalar(
            "select count(*) from read.posts
             where search is distinct from read.post_search_vector(title, summary, body_markdown, status)",
        )
        .fetch_one(&self.admin)
        .await
        .unwrap()
    }

    /// Whether a schema of this name exists (a rebuild's shadow or retired tables).
    pub async fn schema_exists(&self, name: &str) -> bool {
        sqlx::query_scalar("select exists(select 1 from pg_namespace where nspname = $1)")
            .bind(name)
            .fetch_one(&self.admin)
            .await
            .unwrap()
    }

    /// Runs `pressroom-ops projections rebuild posts --json` with `extra`: Ok(its report) or Err(its stderr).
    pub async fn rebuild(&self, extra: &[&str]) -> Result<Value, String> {
        let mut args = vec!["projections", "rebuild", "posts", "--json"];
        args.extend_from_slice(extra);
        let out = self.ops(&args).output().await.map_err(|e| e.to_string())?;
        if out.status.success() {
            serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).to_string())
        }
    }

    /// Waits (up to 60 s) until every projection's checkpoint is at the head of the log.
    pub async fn wait_projected(&self) {
        for _ in 0..600 {
            let behind: i64 = sqlx::query_scalar(
                "select count(*) from read.checkpoints c
                 where c.name in ('posts', 'comments', 'media')
                   and exists (select 1 from events e
                               where (e.transaction_id, e.global_position) > (c.transaction_id, c.global_position))",
            )
            .fetch_one(&self.admin)
            .await
            .unwrap();
            let started: i64 = sqlx::query_scalar(
                "select count(*) from read.checkpoints where name in ('posts', 'comments', 'media')",
            )
            .fetch_one(&self.admin)
            .await
            .unwrap();
            if behind == 0 && started == 3 {
                return self.wait_replayed().await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("projections did not reach the head of the log within 60 s");
    }

    /// Waits until the replica has the primary's `posts` and `comments` checkpoints (or later ones): reads
    /// without a token go there.
    async fn wait_replayed(&self) {
        const CHECKPOINTS: &str = "select name, transaction_id::text::bigint, global_position from read.checkpoints
                                   where name in ('posts', 'comments', 'media') order by name";
        let wanted: Vec<(String, i64, i64)> = sqlx::query_as(CHECKPOINTS).fetch_all(&self.admin).await.unwrap();
        let mut replica = <sqlx::PgConnection as sqlx::Connection>::connect(&self.replica_admin_url).await.unwrap();
        for _ in 0..1000 {
            let seen: Vec<(String, i64, i64)> = sqlx::query_as(CHECKPOINTS).fetch_all(&mut replica).await.unwrap();
            let reached =
                wanted.iter().all(|(name, tx, pos)| seen.iter().any(|(n, t, p)| n == name && (*t, *p) >= (*tx, *pos)));
            if reached {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the replica did not replay the projections' checkpoints within 10 s");
    }

    /// A pool as the application role, through PgBouncer.
    pub async fn app_pool(&self) -> PgPool {
        shared::store::db::pool(&self.primary_url, 20, "pressroom-tests").unwrap()
    }

    /// Registers an author with this role; returns (id, email, password).
    pub async fn author(&self, role: Role) -> (Uuid, String, String) {
        let pool = self.app_pool().await;
        let email = format!("{}-{}@test.local", role.as_str(), Uuid::now_v7().simple());
        let password = "correct horse battery".to_string();
        let new = NewAuthor {
            email: Email::parse("email", &email).unwrap(),
            name: format!("Test {} {}", role.as_str(), Uuid::now_v7().simple()),
            password: password.clone(),
            role,
            slug: None,
            bio: None,
            avatar_url: None,
        };
        let (a, _) = authors::register(&pool, new, &Metadata::default()).await.unwrap();
        (a.id, email, password)
    }
}

/// Where `./ops/test` built the binaries.
pub fn bin(name: &str) -> PathBuf {
    let dir = std::env::var("PRESSROOM_TEST_BIN_DIR").map(PathBuf::from).unwrap_or_else(|_| {
        let exe = std::env::current_exe().unwrap();
        exe.parent().and_then(|p| p.parent()).unwrap().to_path_buf()
    });
    dir.join(name)
}

/// A port nobody listens on, never handed out twice in this process (tests run in parallel threads,
/// and the kernel may offer a just-released ephemeral port again).
pub fn free_port() -> u16 {
    static USED: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut used = USED.lock().unwrap();
        if !used.contains(&port) {
            used.push(port);
            return port;
        }
    }
}

/// Runs psql-free superuser SQL on the replica (pausing and resuming replay).
pub async fn replica_exec(replica_admin_url: &str, sql: &str) {
    let pool = PgPool::connect(replica_admin_url).await.unwrap();
    sqlx::query(sql).execute(&pool).await.unwrap();
    pool.close().await;
}

/// A `w`×`h` gradient encoded as `format`: a test photo.
pub fn picture(w: u32, h: u32, format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 128]));
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img).write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// Asserts an RFC 9457 problem+json response with this status; returns its body.
pub async fn assert_problem(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status().as_u16(), status, "status");
    assert_eq!(res.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("application/problem+json"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert!(body["type"].is_string() && body["title"].is_string(), "{body}");
    body
}

/// Asserts that a rebuild's report (`--json`) found every table as live has it: rows and checksum.
pub fn assert_tables_identical(report: &Value) {
    for t in report["tables"].as_array().unwrap() {
        assert_eq!(t["live_rows"], t["rebuilt_rows"], "{t}");
        assert_eq!(t["live_checksum"], t["rebuilt_checksum"], "{t}");
    }
}
