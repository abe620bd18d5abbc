//! Media under load: distinct photos (JPEG, 1.6 and 12 megapixels) uploaded with 4 clients against decoding the
//! same bodies in process on two threads (the one check no upload can skip; the transfer alone, to an axum body
//! sink, is reported beside it); then, one photo at a time, how long
//! from the upload's answer until its widest variant is served, per megapixel. Prints Markdown table rows,
//! then `hash=<sha256>` of an image whose 640 variant exists (for the serving scenario).
//!
//! Usage: `pressroom-bench-media COMMAND_URL QUERY_URL TOKEN SINK_URL`

use std::io::Cursor;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::stream::{self, StreamExt};
use serde_json::Value;

const CLIENTS: usize = 4;

/// A distinct photo-like JPEG (gradients and texture, so it compresses like a photo rather than a flat fill).
fn photo(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let n = x.wrapping_mul(7919) ^ y.wrapping_mul(104_729) ^ seed.wrapping_mul(2_654_435_761);
        image::Rgb([
            ((x * 255) / w) as u8 ^ (n & 15) as u8,
            ((y * 255) / h) as u8,
            (seed as u8).wrapping_add((n >> 8) as u8 & 31),
        ])
    });
    let mut out = Cursor::new(Vec::new());
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85);
    let _ = image::DynamicImage::ImageRgb8(img).write_with_encoder(encoder);
    out.into_inner()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Posts every body with [`CLIENTS`] at once; returns (requests/s, MB/s, p50 ms, p99 ms, answers).
async fn drive(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    bodies: &[Vec<u8>],
) -> anyhow::Result<(f64, f64, f64, f64, Vec<Value>)> {
    let started = Instant::now();
    let results: Vec<anyhow::Result<(Duration, Value)>> = stream::iter(bodies.iter().cloned())
        .map(|body| async move {
            let t = Instant::now();
            let mut req = http.post(url).header("content-type", "image/jpeg").body(body);
            if let Some(token) = token {
                req = req.bearer_auth(token);
            }
            let res = req.send().await?;
            let status = res.status();
            let answer = if status == reqwest::StatusCode::NO_CONTENT { Value::Null } else { res.json().await? };
            if !status.is_success() {
                bail!("{url} answered {status}: {answer}");
            }
            Ok((t.elapsed(), answer))
        })
        .buffer_unordered(CLIENTS)
        .collect()
        .await;
    let wall = started.elapsed().as_secs_f64();
    let mut latencies = Vec::new();
    let mut answers = Vec::new();
    for r in results {
        let (latency, answer) = r?;
        latencies.push(latency);
        answers.push(answer);
    }
    latencies.sort();
    let megabytes = bodies.iter().map(Vec::len).sum::<usize>() as f64 / 1e6;
    Ok((
        bodies.len() as f64 / wall,
        megabytes / wall,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        answers,
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, command, query, token, sink] = args.as_slice() else {
        bail!("usage: pressroom-bench-media COMMAND_URL QUERY_URL TOKEN SINK_URL");
    };
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let upload_url = format!("{command}/v1/media");
    let mut seed = 1u32;
    let mut last_hash = String::new();
    for (w, h, count) in [(1600u32, 1000u32, 48usize), (4000, 3000, 12)] {
        let bodies: Vec<Vec<u8>> = (0..count)
            .map(|_| {
                seed += 1;
                photo(w, h, seed)
            })
            .collect();
        let mean_kb = bodies.iter().map(Vec::len).sum::<usize>() / bodies.len() / 1024;
        let (b_rps, b_mbs, ..) = drive(&http, sink, None, &bodies).await.context("baseline")?;
        let decode_rps = decode_bound(&bodies);
        let (rps, mbs, p50, p99, answers) = drive(&http, &upload_url, Some(token), &bodies).await.context("uploads")?;
        if answers.iter().any(|a| a["width"] != w) {
            bail!("an upload answered another width");
        }
        let mp = f64::from(w) * f64::from(h) / 1e6;
        println!(
            "| POST /v1/media, {w}×{h} JPEG ({mp:.1} MP, {mean_kb} KB), {CLIENTS} clients, {count} distinct photos | {rps:.1} uploads/s ({mbs:.1} MB/s) | {p50:.1} | {p99:.1} | decoding the same JPEGs in process on 2 threads (the check every upload needs): {decode_rps:.1}/s; an axum body sink: {b_rps:.1} req/s ({b_mbs:.0} MB/s) | {:.0}% of decoding |",
            100.0 * rps / decode_rps
        );
        // Let the worker drain the burst before timing one image alone.
        for a in &answers {
            let hash = a["hash"].as_str().context("hash")?;
            wait_variant(&http, query, hash, 320).await?;
        }
        let mut per_mp = Vec::new();
        for _ in 0..3 {
            seed += 1;
            let body = photo(w, h, seed);
            let res = http
                .post(&upload_url)
                .bearer_auth(token)
                .header("content-type", "image/jpeg")
                .body(body)
                .send()
                .await?;
            let answer: Value = res.json().await?;
            let hash = answer["hash"].as_str().context("hash")?.to_string();
            let widest = answer["variants"]
                .as_array()
                .and_then(|v| v.last())
                .and_then(|v| v["width"].as_u64())
                .context("variants")?;
            let t = Instant::now();
            wait_variant(&http, query, &hash, widest as u32).await?;
            per_mp.push(t.elapsed().as_secs_f64() * 1000.0 / mp);
            last_hash = hash;
        }
        per_mp.sort_by(f64::total_cmp);
        println!(
            "| variants of one {w}×{h} photo (all widths, WebP q80), upload answered → widest variant served | {:.0} ms per MP (median of 3; {:.0}–{:.0}) | | | | |",
            per_mp[1], per_mp[0], per_mp[2]
        );
    }
    println!("hash={last_hash}");
    Ok(())
}

/// Images per second the `image` crate decodes these bodies at, on two threads: the floor of an upload's work.
fn decode_bound(bodies: &[Vec<u8>]) -> f64 {
    let started = Instant::now();
    std::thread::scope(|s| {
        for half in bodies.chunks(bodies.len().div_ceil(2)) {
            s.spawn(move || half.iter().filter(|b| image::load_from_memory(b).is_ok()).count());
        }
    });
    bodies.len() as f64 / started.elapsed().as_secs_f64()
}

/// Polls (every 5 ms) until the variant answers 200; errors after 120 s.
async fn wait_variant(http: &reqwest::Client, query: &str, hash: &str, width: u32) -> anyhow::Result<()> {
    let url = format!("{query}/media/{hash}/{width}.webp");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        if http.get(&url).send().await?.status() == reqwest::StatusCode::OK {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    bail!("{url} never appeared")
}
