//! Test harness: a fresh database per test (cloned from the migrated template, visible on the replica),
//! the real service binaries started on free ports, and a small HTTP client with one method per endpoint.
//! Needs the throwaway topology `./ops/test` starts (its ports come in `PRESSROOM_TEST_*`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use shared::domain::role::Role;
use shared::domain::values::Email;
use shared::service::config::Config;
use shared::store::event_store::Metadata;
use shared::write::authors::{self, NewAuthor};
use sqlx::PgPool;
use tokio::process::{Child, Command};
use uuid::Uuid;

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

/// The three service binaries running against one test database.
pub struct Stack {
    pub db: TestDb,
    pub query: String,
    pub command: String,
    pub projector: String,
    pub http: reqwest::Client,
    children: Vec<Child>,
    env: Vec<(String, String)>,
    logs: ServiceLogs,
}

/// The services' output, one file per process under the system temp folder: printed only when the test
/// that started them fails, so a passing run stays quiet.
pub struct ServiceLogs {
    dir: PathBuf,
}

impl ServiceLogs {
    fn new(test_db: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("pressroom-test-logs-{test_db}"));
        std::fs::create_dir_all(&dir).unwrap();
        ServiceLogs { dir }
    }

    /// Sends `cmd`'s stdout and stderr to `<name>.log` (appending: a restarted service adds to its file).
    pub fn attach(&self, cmd: &mut Command, name: &str) {
        let file =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(format!("{name}.log"))).unwrap();
        cmd.stdout(file.try_clone().unwrap()).stderr(file);
    }
}

impl Drop for ServiceLogs {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(200).collect();
                eprintln!("--- {} (last {} lines) ---", entry.path().display(), tail.len());
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Stack {
    /// Starts the stack with rate limits off (tests share one client IP and one Redis).
    pub async fn start(db: TestDb) -> Stack {
        let off = [
            ("PRESSROOM_RATE_LIMIT_LOGIN", "0"),
            ("PRESSROOM_RATE_LIMIT_COMMENTS", "0"),
            ("PRESSROOM_RATE_LIMIT_WRITES", "0"),
            ("PRESSROOM_RATE_LIMIT_READS", "0"),
        ];
        Self::start_with(db, &off).await
    }

    /// Starts the stack with extra environment variables.
    pub async fn start_with(db: TestDb, extra: &[(&str, &str)]) -> Stack {
        let (q, c, p) = (free_port(), free_port(), free_port());
        let mut env = db.env();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env.push(("PRESSROOM_QUERY_ADDR".into(), format!("127.0.0.1:{q}")));
        env.push(("PRESSROOM_COMMAND_ADDR".into(), format!("127.0.0.1:{c}")));
        env.push(("PRESSROOM_PROJECTOR_ADDR".into(), format!("127.0.0.1:{p}")));
        let mut children = Vec::new();
        let env_for_children = env.clone();
        let logs = ServiceLogs::new(&db.name);
        for name in ["pressroom-projector", "pressroom-command-api", "pressroom-query-api"] {
            let mut cmd = Command::new(bin(name));
            cmd.envs(env_for_children.iter().cloned())
                .env("PRESSROOM_LOG", std::env::var("PRESSROOM_LOG").unwrap_or_else(|_| "warn".into()))
                .kill_on_drop(true);
            logs.attach(&mut cmd, name);
            children.push(cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}")));
        }
        let stack = Stack {
            db,
            query: format!("http://127.0.0.1:{q}"),
            command: format!("http://127.0.0.1:{c}"),
            projector: format!("http://127.0.0.1:{p}"),
            http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
            children,
            env,
            logs,
        };
        for base in [&stack.projector, &stack.command, &stack.query] {
            let mut ok = false;
            for _ in 0..200 {
                if stack.http.get(format!("{base}/ready")).send().await.is_ok_and(|r| r.status().is_success()) {
                    ok = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(ok, "{base}/ready never answered 200");
        }
        let mut stack = stack;
        for child in &mut stack.children {
            // A service that died (e.g. its port was taken) must not be mistaken for another's.
            assert!(child.try_wait().unwrap().is_none(), "a service exited during start-up");
        }
        stack
    }

    /// Logs in and returns a bearer token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let res = self
            .http
            .post(format!("{}/v1/session", self.command))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "login failed");
        res.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string()
    }

    /// A token for a new author of this role.
    pub async fn token(&self, role: Role) -> (Uuid, String) {
        let (id, email, password) = self.db.author(role).await;
        (id, self.login(&email, &password).await)
    }

    pub async fn create_post(&self, token: &str, body: Value) -> reqwest::Response {
        self.http.post(format!("{}/v1/posts", self.command)).bearer_auth(token).json(&body).send().await.unwrap()
    }

    pub async fn patch_post(&self, token: &str, id: &str, if_match: Option<&str>, body: Value) -> reqwest::Response {
        let mut req = self.http.patch(format!("{}/v1/posts/{id}", self.command)).bearer_auth(token).json(&body);
        if let Some(v) = if_match {
            req = req.header("if-match", v);
        }
        req.send().await.unwrap()
    }

    pub async fn publish(&self, token: &str, id: &str) -> reqwest::Response {
        self.http.post(format!("{}/v1/posts/{id}/publish", self.command)).bearer_auth(token).send().await.unwrap()
    }

    /// GET `path` from the query API with a `Pressroom-Min-Position` token.
    pub async fn query_at(&self, path: &str, min_position: i64) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.query))
            .header("pressroom-min-position", min_position)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_post(&self, slug: &str, min_position: Option<i64>) -> reqwest::Response {
        let mut req = self.http.get(format!("{}/v1/posts/{slug}", self.query));
        if let Some(p) = min_position {
            req = req.header("pressroom-min-position", p);
        }
        req.send().await.unwrap()
    }

    pub async fn list_posts(&self, query: &str) -> reqwest::Response {
        self.http.get(format!("{}/v1/posts{query}", self.query)).send().await.unwrap()
    }

    /// Creates and publishes a post; returns (id, slug, position of the publish).
    pub async fn published_post(&self, token: &str, title: &str) -> (String, String, i64) {
        self.publish_post(token, json!({"title": title, "body_markdown": "Hello **world**"})).await
    }

    /// Creates a post from `body` and publishes it; returns (id, slug, position of the publish).
    pub async fn publish_post(&self, token: &str, body: Value) -> (String, String, i64) {
        let res = self.create_post(token, body).await;
        assert_eq!(res.status(), 201);
        let created: Value = res.json().await.unwrap();
        let id = created["id"].as_str().unwrap().to_string();
        let res = self.publish(token, &id).await;
        assert_eq!(res.status(), 200);
        let position: i64 = res.headers()["pressroom-position"].to_str().unwrap().parse().unwrap();
        (id, created["slug"].as_str().unwrap().to_string(), position)
    }

    /// Sends SIGKILL-free shutdown: children are killed on drop; this waits for them explicitly.
    pub async fn stop(mut self) {
        for c in &mut self.children {
            let _ = c.kill().await;
        }
    }
}

/// Runs psql-free superuser SQL on the replica (pausing and resuming replay).
pub async fn replica_exec(replica_admin_url: &str, sql: &str) {
    let pool = PgPool::connect(replica_admin_url).await.unwrap();
    sqlx::query(sql).execute(&pool).await.unwrap();
    pool.close().await;
}

impl Stack {
    /// Any command-API request: method, path, optional bearer token, optional JSON body, extra headers.
    pub async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, String)],
    ) -> reqwest::Response {
        let mut req = self.http.request(method, format!("{}{path}", self.command));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        req.send().await.unwrap()
    }

    /// Uploads an image's bytes raw (`POST /v1/media`, `query` such as `?alt=…` appended to the path).
    pub async fn upload(&self, token: &str, query: &str, content_type: &str, bytes: Vec<u8>) -> reqwest::Response {
        let req = self.http.post(format!("{}/v1/media{query}", self.command)).bearer_auth(token);
        req.header("content-type", content_type).body(bytes).send().await.unwrap()
    }

    /// Uploads an image that must be new (201); returns the media as answered.
    pub async fn uploaded(&self, token: &str, query: &str, content_type: &str, bytes: Vec<u8>) -> Value {
        let res = self.upload(token, query, content_type, bytes).await;
        assert_eq!(res.status(), 201, "upload");
        res.json().await.unwrap()
    }

    /// Creates a draft as `token`; returns its id.
    pub async fn draft(&self, token: &str, title: &str) -> String {
        let res = self.create_post(token, json!({"title": title, "body_markdown": "body"})).await;
        assert_eq!(res.status(), 201, "draft {title}");
        res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
    }
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

impl Stack {
    /// Starts one more projector process on this stack's database (it stands by while the first leads).
    /// Kills the stack's own projector with SIGKILL (no shutdown, no flushing) and waits for it to die.
    pub async fn kill_projector(&mut self) {
        let projector = &mut self.children[0];
        projector.kill().await.unwrap();
    }

    /// Sends SIGTERM to the stack's query API (graceful shutdown); returns its child to await.
    pub fn terminate_query_api(&mut self) -> &mut Child {
        let query = &mut self.children[2];
        let pid = query.id().expect("query-api is running").to_string();
        let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success(), "kill -TERM {pid} failed");
        query
    }

    /// Another query API on this stack's database, listening on `port`.
    pub fn spawn_query_api(&self, port: u16) -> Child {
        let mut env = self.env.clone();
        env.retain(|(k, _)| k != "PRESSROOM_QUERY_ADDR");
        env.push(("PRESSROOM_QUERY_ADDR".into(), format!("127.0.0.1:{port}")));
        let mut cmd = Command::new(bin("pressroom-query-api"));
        cmd.envs(env).env("PRESSROOM_LOG", "warn").kill_on_drop(true);
        self.logs.attach(&mut cmd, &format!("pressroom-query-api-{port}"));
        cmd.spawn().unwrap()
    }

    pub fn spawn_projector(&self) -> Child {
        self.spawn_projector_on(free_port())
    }

    /// Another projector process on this stack's database, serving `/status` on `port`.
    pub fn spawn_projector_on(&self, port: u16) -> Child {
        self.spawn_projector_with(&[("PRESSROOM_PROJECTOR_ADDR", &format!("127.0.0.1:{port}"))])
    }

    /// Another projector process on this stack's database, its environment changed by `extra`.
    pub fn spawn_projector_with(&self, extra: &[(&str, &str)]) -> Child {
        let mut env = self.env.clone();
        env.push(("PRESSROOM_PROJECTOR_ADDR".into(), format!("127.0.0.1:{}", free_port())));
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let addr = env.iter().rev().find(|(k, _)| k == "PRESSROOM_PROJECTOR_ADDR").map(|(_, v)| v.clone());
        let port = addr.as_deref().and_then(|a| a.rsplit(':').next()).unwrap_or_default().to_string();
        let mut cmd = Command::new(bin("pressroom-projector"));
        cmd.envs(env).env("PRESSROOM_LOG", "warn").kill_on_drop(true);
        self.logs.attach(&mut cmd, &format!("pressroom-projector-{port}"));
        cmd.spawn().unwrap()
    }
}

/// Asserts that a rebuild's report (`--json`) found every table as live has it: rows and checksum.
pub fn assert_tables_identical(report: &Value) {
    for t in report["tables"].as_array().unwrap() {
        assert_eq!(t["live_rows"], t["rebuilt_rows"], "{t}");
        assert_eq!(t["live_checksum"], t["rebuilt_checksum"], "{t}");
    }
}
