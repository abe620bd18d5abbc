//! The public site in a real browser: headless Chromium (Debian's `chromium`, installed by
//! `ops/lib/install-test-tools.sh`) loads the home page, a post, a tag page and a 404 from the running
//! services; the test reads the rendered DOM (title, Open Graph, JSON-LD, the article's text), follows every
//! link on the post page, saves screenshots, and runs Lighthouse on the post page (scores recorded beside
//! the screenshots).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use pressroom_tests::{Stack, TestDb};
use serde_json::{json, Value};
use shared::domain::role::Role;
use tokio::process::Command;

fn chromium() -> String {
    std::env::var("PRESSROOM_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// Where screenshots and the Lighthouse report go (`PRESSROOM_TEST_OUTPUT_DIR`, else the temp folder).
fn output_dir() -> PathBuf {
    let dir = std::env::var_os("PRESSROOM_TEST_OUTPUT_DIR")
        .map_or_else(|| std::env::temp_dir().join("pressroom-test-output"), PathBuf::from)
        .join("site");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn browser(args: &[&str]) -> Command {
    let mut cmd = Command::new(chromium());
    // Root in a container has no user namespaces for the sandbox.
    cmd.args(["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"])
        .arg(format!(
            "--user-data-dir={}",
            std::env::temp_dir().join(format!("chromium-{}", uuid::Uuid::now_v7())).display()
        ))
        .args(args)
        .kill_on_drop(true);
    cmd
}

/// The DOM as Chromium rendered it.
async fn rendered_dom(url: &str) -> String {
    let out = tokio::time::timeout(Duration::from_secs(60), browser(&["--dump-dom", url]).output())
        .await
        .expect("chromium answers within a minute")
        .expect("chromium runs");
    assert!(out.status.success(), "chromium failed on {url}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

async fn screenshot(url: &str, name: &str) -> PathBuf {
    let path = output_dir().join(format!("{name}.png"));
    let shot = format!("--screenshot={}", path.display());
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        browser(&[&shot, "--window-size=1280,1400", "--hide-scrollbars", url]).output(),
    )
    .await
    .expect("chromium answers within a minute")
    .expect("chromium runs");
    assert!(out.status.success(), "screenshot of {url}: {}", String::from_utf8_lossy(&out.stderr));
    let png = std::fs::read(&path).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 5_000, "{} is a real picture", path.display());
    path
}

fn between<'a>(html: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = html.find(start)? + start.len();
    Some(&html[from..from + html[from..].find(end)?])
}

#[tokio::test]
async fn chromium_renders_the_site_with_its_metadata_working_links_and_lighthouse_scores() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    let body = "## A calm start\n\nEvent sourcing keeps **every change** as an event. Projections turn the log \
                into tables that readers query from replicas.\n\n- one log\n- many views\n";
    // A cover photo, uploaded like `curl --data-binary @photo.png`; its variants are made in the background.
    let photo = pressroom_tests::picture(2400, 1260, image::ImageFormat::Png);
    let media = stack.uploaded(&token, "?alt=A%20harbour%20at%20dusk", "image/png", photo).await;
    let hash = media["hash"].as_str().unwrap().to_string();
    // The same photo in the body, by the URL an author pastes.
    let body = format!("{body}\n![The harbour again](/media/{hash}/original.png)\n\nAfter the figure.\n");
    let body = json!({"title": "Reading the log", "body_markdown": body, "summary": "How projections read the log.",
                      "tags": ["Event Sourcing"], "cover_media_id": media["id"]});
    stack.publish_post(&token, body).await;
    stack.published_post(&token, "A second post").await;
    stack.db.wait_projected().await;
    for _ in 0..300 {
        let res = stack.http.get(format!("{}/media/{hash}/1280.webp", stack.query)).send().await.unwrap();
        if res.status() == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let base = &stack.query;
    let post = rendered_dom(&format!("{base}/posts/reading-the-log")).await;
    assert!(post.contains("<title>Reading the log · Pressroom</title>"), "{post}");
    assert!(post.contains("<meta property=\"og:title\" content=\"Reading the log · Pressroom\">"));
    let ld: Value = serde_json::from_str(between(&post, "<script type=\"application/ld+json\">", "</script>").unwrap())
        .expect("JSON-LD in the rendered DOM parses");
    assert_eq!(ld["@graph"][0]["@type"], "BlogPosting");
    assert!(post.contains("Event sourcing keeps <strong>every change</strong> as an event."));
    assert!(post.contains("<h1>Reading the log</h1>"));
    let cover = between(&post, "<img class=\"cover\"", ">").expect("a cover image in the rendered DOM");
    assert!(cover.contains(&format!("srcset=\"/media/{hash}/320.webp 320w, /media/{hash}/640.webp 640w")), "{cover}");
    assert!(cover.contains("width=\"2400\" height=\"1260\"") && cover.contains("alt=\"A harbour at dusk\""), "{cover}");
    assert!(post.contains(&format!("/media/{hash}/1280.webp\">")), "og:image is the 1280 variant");
    let figure = between(&post, "<img src=", ">").expect("the body's image in the rendered DOM");
    assert!(figure.contains(&format!("srcset=\"/media/{hash}/320.webp 320w")), "{figure}");
    assert!(figure.contains("width=\"2400\" height=\"1260\"") && figure.contains("loading=\"lazy\""), "{figure}");

    // Every link on the post page leads somewhere.
    let mut links: Vec<String> = post
        .match_indices("href=\"/")
        .filter_map(|(i, _)| between(&post[i..], "href=\"", "\""))
        .map(String::from)
        .collect();
    links.sort();
    links.dedup();
    assert!(links.len() >= 6, "{links:?}");
    for link in &links {
        let res = stack.http.get(format!("{base}{}", link.replace("&amp;", "&"))).send().await.unwrap();
        assert_eq!(res.status(), 200, "{link}");
    }

    let home = rendered_dom(&format!("{base}/")).await;
    assert!(home.contains("<title>Pressroom</title>") && home.contains("A second post"));
    let tag = rendered_dom(&format!("{base}/tags/event-sourcing")).await;
    assert!(tag.contains("<h1>#Event Sourcing</h1>") && tag.contains("Reading the log"));
    let missing = rendered_dom(&format!("{base}/posts/no-such-post")).await;
    assert!(missing.contains("<h1>Not found</h1>") && missing.contains("href=\"/\""));

    for (path, name) in
        [("/", "home"), ("/posts/reading-the-log", "post"), ("/tags/event-sourcing", "tag"), ("/nope", "404")]
    {
        let shot = screenshot(&format!("{base}{path}"), name).await;
        println!("screenshot: {}", shot.display());
    }

    let (scores, fetched) = lighthouse(&format!("{base}/posts/reading-the-log")).await;
    // The browser chose a resized WebP from the srcset (not the 2400-pixel original).
    let cover_fetch =
        fetched.iter().find(|r| r["url"].as_str().is_some_and(|u| u.contains(&format!("/media/{hash}/"))));
    let cover_fetch = cover_fetch.unwrap_or_else(|| panic!("the cover was never fetched: {fetched:?}"));
    assert!(cover_fetch["url"].as_str().unwrap().ends_with(".webp"), "{cover_fetch}");
    assert_eq!((cover_fetch["statusCode"].as_i64(), cover_fetch["mimeType"].as_str()), (Some(200), Some("image/webp")));
    println!("lighthouse: {scores}");
    for category in ["seo", "accessibility", "best-practices"] {
        let score = scores[category].as_f64().unwrap_or_default();
        assert!(score >= 0.95, "Lighthouse {category} is {score} (target ≥ 0.95): {scores}");
    }
}

/// Lighthouse's SEO, accessibility and best-practices scores for `url` (0 to 1) and the requests the page
/// made; its report saved.
async fn lighthouse(url: &str) -> (Value, Vec<Value>) {
    let bin = std::env::var("PRESSROOM_TEST_LIGHTHOUSE").expect("PRESSROOM_TEST_LIGHTHOUSE (set by ./ops/test)");
    let report = output_dir().join("lighthouse-post.json");
    let out = tokio::time::timeout(
        Duration::from_secs(180),
        Command::new(bin)
            .arg(url)
            .args([
                "--only-categories=seo,accessibility,best-practices",
                "--only-audits=network-requests",
                "--output=json",
                "--quiet",
            ])
            .arg(format!("--output-path={}", report.display()))
            .arg("--chrome-flags=--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage")
            .env("CHROME_PATH", chromium())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("lighthouse finishes within 3 minutes")
    .expect("lighthouse runs");
    assert!(out.status.success(), "lighthouse: {}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let mut scores = json!({});
    for (name, category) in report["categories"].as_object().unwrap() {
        scores[name] = category["score"].clone();
    }
    let requests = report["audits"]["network-requests"]["details"]["items"].as_array().cloned().unwrap_or_default();
    (scores, requests)
}
