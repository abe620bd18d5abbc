//! Freshness under load, as a reader sees it: an open-loop generator edits published posts' titles at a fixed
//! rate (each edit starts at its scheduled time, whatever the earlier ones are doing, so slow answers are not
//! hidden), and for every edit a reader without a consistency token polls `GET /v1/posts/{slug}` every 10 ms
//! from the command's answer until the new version shows. Prints a Markdown table row per rate.
//!
//! With the projector's metrics URL, each row also says where the time went: the mean age of the posts
//! projection's batches (their oldest event) when read, committed and their Redis effects landed.
//!
//! Usage: `pressroom-bench-freshness COMMAND_URL QUERY_URL TOKEN RATES SECONDS [POSTS [PROJECTOR_METRICS_URL]]`
//! (RATES comma-separated edits/s, e.g. `100,250,500,1000`).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// How often a reader looks again.
const POLL: Duration = Duration::from_millis(10);
/// An edit not visible after this long counts as never seen.
const GIVE_UP: Duration = Duration::from_secs(10);

struct Post {
    id: String,
    slug: String,
    version: AtomicI64,
    busy: AtomicBool,
}

/// What one edit measured.
enum Outcome {
    /// Command answered after `command`; the new version showed `visible` after the answer.
    Seen { command: Duration, visible: Duration },
    /// 412 or another refusal (a concurrent edit of the same post).
    Refused,
    /// Not visible within [`GIVE_UP`], or the command failed.
    Lost,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        bail!("usage: {} COMMAND_URL QUERY_URL TOKEN RATES SECONDS [POSTS]", args[0]);
    }
    let (command, query, token) = (args[1].clone(), args[2].clone(), args[3].clone());
    let rates: Vec<u32> = args[4].split(',').map(str::parse).collect::<Result<_, _>>().context("RATES")?;
    let seconds: u64 = args[5].parse().context("SECONDS")?;
    let count: usize = args.get(6).map(|s| s.parse()).transpose().context("POSTS")?.unwrap_or(1000);
    let metrics = args.get(7).cloned();
    let http = reqwest::Client::builder().pool_max_idle_per_host(512).build()?;

    let posts = Arc::new(publish(&http, &command, &token, count).await?);
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "| edits/s asked | edits/s achieved | p50 ms | p95 ms | p99 ms | max ms | command p99 ms | refused | not seen \
         | batch age read / committed / effects, mean ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for rate in rates {
        let before = stages(&http, metrics.as_deref()).await;
        let outcomes = run(&http, &command, &query, &token, posts.clone(), rate, Duration::from_secs(seconds)).await;
        let after = stages(&http, metrics.as_deref()).await;
        let means: Vec<String> = STAGES
            .iter()
            .enumerate()
            .map(|(i, _)| {
                let (sum, count) = (after[i].0 - before[i].0, after[i].1 - before[i].1);
                if count > 0.0 {
                    format!("{:.1}", sum / count * 1000.0)
                } else {
                    "–".into()
                }
            })
            .collect();
        report(rate, seconds, &outcomes, &means.join(" / "));
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(())
}

const STAGES: [&str; 3] = ["read", "committed", "effects"];

/// The posts projection's `pressroom_freshness_duration_seconds` (sum, count) per stage, zeros without a URL.
async fn stages(http: &reqwest::Client, url: Option<&str>) -> Vec<(f64, f64)> {
    let text = match url {
        Some(url) => match http.get(url).send().await {
            Ok(res) => res.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        },
        None => String::new(),
    };
    let value = |series: &str, stage: &str| -> f64 {
        text.lines()
            .filter(|l| {
                l.starts_with(series) && l.contains("projection=\"posts\"") && l.contains(&format!("stage=\"{stage}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    STAGES
        .iter()
        .map(|stage| {
            (
                value("pressroom_freshness_duration_seconds_sum", stage),
                value("pressroom_freshness_duration_seconds_count", stage),
            )
        })
        .collect()
}

/// Drafts and publishes `count` posts (16 at a time) and returns them at their versions.
async fn publish(http: &reqwest::Client, command: &str, token: &str, count: usize) -> anyhow::Result<Vec<Post>> {
    let tag = std::process::id();
    let mut posts = Vec::with_capacity(count);
    for chunk in (0..count).collect::<Vec<_>>().chunks(16) {
        let made = chunk.iter().map(|i| async move {
            let body = json!({"title": format!("Freshness {tag} {i}"), "body_markdown": "Edited under load."});
            let created: Value = http
                .post(format!("{command}/v1/posts"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let id = created["id"].as_str().context("id")?.to_string();
            let published: Value = http
                .post(format!("{command}/v1/posts/{id}/publish"))
                .bearer_auth(token)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let version = published["version"].as_i64().context("version")?;
            let slug = created["slug"].as_str().context("slug")?.to_string();
            anyhow::Ok(Post { id, slug, version: AtomicI64::new(version), busy: AtomicBool::new(false) })
        });
        for post in futures::future::join_all(made).await {
            posts.push(post?);
        }
    }
    Ok(posts)
}

/// Edits at `rate` per second for `length`, each started at its scheduled time.
async fn run(
    http: &reqwest::Client,
    command: &str,
    query: &str,
    token: &str,
    posts: Arc<Vec<Post>>,
    rate: u32,
    length: Duration,
) -> Vec<Outcome> {
    let start = tokio::time::Instant::now();
    let total = (u64::from(rate) * length.as_secs()) as usize;
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / f64::from(rate))).await;
        let (http, command, query, token, posts) =
            (http.clone(), command.to_string(), query.to_string(), token.to_string(), posts.clone());
        tasks.push(tokio::spawn(async move {
            // The next post with no edit in flight, from this edit's turn on.
            let Some(post) = (0..posts.len())
                .map(|k| &posts[(i + k) % posts.len()])
                .find(|p| p.busy.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_ok())
            else {
                return Outcome::Refused;
            };
            let outcome = edit(&http, &command, &query, &token, post, i).await;
            post.busy.store(false, Ordering::Release);
            outcome
        }));
    }
    let mut outcomes = Vec::with_capacity(total);
    for t in tasks {
        outcomes.push(t.await.unwrap_or(Outcome::Lost));
    }
    outcomes
}

/// One edit: the command, then a reader polling until the new version shows.
async fn edit(http: &reqwest::Client, command: &str, query: &str, token: &str, post: &Post, n: usize) -> Outcome {
    let version = post.version.load(Ordering::Acquire);
    let sent = Instant::now();
    let answer = http
        .patch(format!("{command}/v1/posts/{}", post.id))
        .bearer_auth(token)
        .header("if-match", format!("\"{version}\""))
        .json(&json!({"title": format!("Freshness edit {n}")}))
        .send()
        .await;
    let answered = Instant::now();
    let new_version = match answer {
        Ok(res) if res.status().is_success() => {
            match res.json::<Value>().await.ok().and_then(|v| v["version"].as_i64()) {
                Some(v) => v,
                None => return Outcome::Lost,
            }
        }
        Ok(res) if res.status().is_client_error() => {
            if let Some(current) = res.json::<Value>().await.ok().and_then(|v| v["current_version"].as_i64()) {
                post.version.store(current, Ordering::Release);
            }
            return Outcome::Refused;
        }
        _ => return Outcome::Lost,
    };
    post.version.store(new_version, Ordering::Release);
    let url = format!("{query}/v1/posts/{}", post.slug);
    let mut tick = tokio::time::interval(POLL);
    while answered.elapsed() < GIVE_UP {
        tick.tick().await;
        let Ok(res) = http.get(&url).send().await else { continue };
        let seen = res.json::<Value>().await.ok().and_then(|v| v["version"].as_i64()).unwrap_or(0);
        if seen >= new_version {
            return Outcome::Seen { command: answered - sent, visible: answered.elapsed() };
        }
    }
    Outcome::Lost
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn report(rate: u32, seconds: u64, outcomes: &[Outcome], stages: &str) {
    let mut visible: Vec<Duration> = Vec::new();
    let mut commands: Vec<Duration> = Vec::new();
    let (mut refused, mut lost) = (0, 0);
    for o in outcomes {
        match o {
            Outcome::Seen { command, visible: v } => {
                visible.push(*v);
                commands.push(*command);
            }
            Outcome::Refused => refused += 1,
            Outcome::Lost => lost += 1,
        }
    }
    visible.sort();
    commands.sort();
    println!(
        "| {rate} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {refused} | {lost} | {stages} |",
        visible.len() as f64 / seconds as f64,
        percentile(&visible, 0.5),
        percentile(&visible, 0.95),
        percentile(&visible, 0.99),
        percentile(&visible, 1.0),
        percentile(&commands, 0.99),
    );
}
