//! The three service binaries started against one test database, their logs, and a small HTTP client with
//! one method per endpoint.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use shared::domain::role::Role;
use tokio::process::{Child, Command};
use uuid::Uuid;

use crate::{bin, free_port, TestDb};

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

impl Stack {
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
