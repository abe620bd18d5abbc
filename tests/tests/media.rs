//! Media end to end: an author uploads a photo (multipart and raw), it is stored stripped and
//! content-addressed, variants appear in the background, a post uses it as its cover, readers get the
//! resized WebP in the JSON, the page and the social cards; hostile files are refused with nothing stored.

use std::time::Duration;

use pressroom_tests::{assert_problem, Stack, TestDb};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shared::domain::role::Role;

/// A `w`×`h` JPEG with an EXIF block that holds a secret a reader must never get.
fn photo(w: u32, h: u32) -> Vec<u8> {
    let jpeg = pressroom_tests::picture(w, h, image::ImageFormat::Jpeg);
    // APP1 "Exif": a big-endian TIFF header with an empty IFD, then the secret.
    let mut exif = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\0\0\0\0\0".to_vec();
    exif.extend_from_slice(b"GPSLatitude=48.8584N-SECRET");
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&exif);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn png(w: u32, h: u32) -> Vec<u8> {
    pressroom_tests::picture(w, h, image::ImageFormat::Png)
}

fn multipart(file: &[u8], file_type: &str, alt: Option<&str>) -> (String, Vec<u8>) {
    let boundary = "pressroomboundary7d1";
    let mut body = Vec::new();
    if let Some(alt) = alt {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"alt\"\r\n\r\n{alt}\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"photo.jpg\"\r\nContent-Type: {file_type}\r\n\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The query API's path of a media URL (they are absolute, on PRESSROOM_PUBLIC_URL).
fn path_of(url: &str) -> String {
    url.find("/media/").map(|i| url[i..].to_string()).unwrap()
}

#[tokio::test]
async fn an_uploaded_photo_becomes_a_stripped_original_and_resized_webp_variants_on_the_post_page_and_cards() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    let bytes = photo(2000, 1000);
    let (content_type, body) = multipart(&bytes, "image/jpeg", Some("A gradient <b>test</b>"));
    let res = stack.upload(&token, "", &content_type, body).await;
    assert_eq!(res.status(), 201);
    assert!(res.headers().contains_key("pressroom-position"));
    let media: Value = res.json().await.unwrap();
    let (id, hash) = (media["id"].as_str().unwrap().to_string(), media["hash"].as_str().unwrap().to_string());
    assert_eq!(
        (media["type"].as_str(), media["width"].as_u64(), media["height"].as_u64()),
        (Some("jpeg"), Some(2000), Some(1000))
    );
    let widths: Vec<u64> = media["variants"].as_array().unwrap().iter().map(|v| v["width"].as_u64().unwrap()).collect();
    assert_eq!(widths, vec![320, 640, 1280, 1920]);

    // The same bytes again (raw this time) are the same media.
    let again = stack.upload(&token, "", "image/jpeg", bytes.clone()).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["id"], id.as_str());

    // The original: content-addressed, stripped of EXIF, immutable, ranges, 304.
    let original =
        stack.http.get(format!("{}{}", stack.query, path_of(media["url"].as_str().unwrap()))).send().await.unwrap();
    assert_eq!(original.status(), 200);
    let h = original.headers().clone();
    assert_eq!(h["content-type"], "image/jpeg");
    assert_eq!(h["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(h["etag"].to_str().unwrap(), format!("\"{hash}\""));
    let stored = original.bytes().await.unwrap();
    let text = String::from_utf8_lossy(&stored);
    assert!(!text.contains("SECRET") && !text.contains("Exif"), "EXIF left in the stored original");
    assert_eq!(format!("{:x}", Sha256::digest(&stored)), hash);
    assert!(image::load_from_memory(&stored).is_ok());
    let url = format!("{}{}", stack.query, path_of(media["url"].as_str().unwrap()));
    let part = stack.http.get(&url).header("range", "bytes=0-9").send().await.unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"].to_str().unwrap(), format!("bytes 0-9/{}", stored.len()));
    assert_eq!(part.bytes().await.unwrap(), stored.slice(0..10));
    let past = stack.http.get(&url).header("range", format!("bytes={}-", stored.len())).send().await.unwrap();
    assert_eq!(past.status(), 416);
    let etag = format!("\"{hash}\"");
    let same = stack.http.get(&url).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(same.status(), 304);

    // A variant answers with the original (a 307) until it is made, then with a 640-wide WebP.
    let variant = format!("{}/media/{hash}/640.webp", stack.query);
    let mut made = None;
    for _ in 0..600 {
        let res = stack.http.get(&variant).send().await.unwrap();
        match res.status().as_u16() {
            200 => {
                assert_eq!(res.headers()["content-type"], "image/webp");
                made = Some(res.bytes().await.unwrap());
                break;
            }
            307 => {
                assert_eq!(res.headers()["location"].to_str().unwrap(), format!("/media/{hash}/original.jpg"));
                assert_eq!(res.headers()["cache-control"], "no-store");
            }
            other => panic!("variant answered {other}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let webp =
        image::load_from_memory_with_format(&made.expect("the variant was never made"), image::ImageFormat::WebP)
            .unwrap();
    assert_eq!((webp.width(), webp.height()), (640, 320));
    let status = stack.db.ops(&["media", "status", "--json"]).output().await.unwrap();
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["images"], 1, "{status}");

    // The cover of a published post: JSON, page (srcset, width/height), Open Graph and JSON-LD.
    let res =
        stack.create_post(&token, json!({"title": "A cover", "body_markdown": "Hello", "cover_media_id": id})).await;
    assert_eq!(res.status(), 201);
    let post: Value = res.json().await.unwrap();
    let res = stack.publish(&token, post["id"].as_str().unwrap()).await;
    let position: i64 = res.headers()["pressroom-position"].to_str().unwrap().parse().unwrap();
    let detail: Value = stack.get_post("a-cover", Some(position)).await.json().await.unwrap();
    assert_eq!(detail["cover_media_id"], id.as_str());
    assert_eq!(detail["cover"]["alt"], "A gradient <b>test</b>");
    assert!(detail["cover"]["variants"][1]["url"].as_str().unwrap().ends_with(&format!("/media/{hash}/640.webp")));
    stack.db.wait_projected().await;
    let page = stack.http.get(format!("{}/posts/a-cover", stack.query)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(&format!("/media/{hash}/640.webp 640w")), "no srcset in {page}");
    assert!(page.contains(r#"width="2000" height="1000""#));
    assert!(
        page.contains("alt=\"A gradient &#60;b&#62;test&#60;/b&#62;\"")
            || page.contains("alt=\"A gradient &lt;b&gt;test&lt;/b&gt;\""),
        "alt not escaped: {page}"
    );
    assert!(
        page.contains(r#"<meta property="og:image" content="http"#)
            && page.contains(&format!("/media/{hash}/1280.webp\">"))
    );
    assert!(page.contains(r#"<meta property="og:image:width" content="1280">"#));
    assert!(page.contains(r#""@type":"ImageObject""#));

    // Deletion is refused while the published post uses it, allowed once it does not.
    let res = stack.command(reqwest::Method::DELETE, &format!("/v1/media/{id}"), Some(&token), None, &[]).await;
    assert_problem(res, 409).await;
    // An image in a published post's body is a use too.
    let markdown = format!("A figure:\n\n![gradient](/media/{hash}/640.webp)\n");
    let (body_post, body_slug, at) =
        stack.publish_post(&token, json!({"title": "In the body", "body_markdown": markdown})).await;
    // Shown responsive, in the JSON and on the page: every variant and the original in its srcset, the
    // intrinsic size (no layout shift), lazily loaded, the author's alt text kept.
    let srcset = format!(
        r#"srcset="/media/{hash}/320.webp 320w, /media/{hash}/640.webp 640w, /media/{hash}/1280.webp 1280w, /media/{hash}/1920.webp 1920w, /media/{hash}/original.jpg 2000w""#
    );
    let served: Value = stack.get_post(&body_slug, Some(at)).await.json().await.unwrap();
    let html = served["body_html"].as_str().unwrap();
    assert!(html.contains(&srcset) && html.contains(r#"width="2000" height="1000""#), "{html}");
    assert!(html.contains(r#"alt="gradient" loading="lazy""#), "{html}");
    let page = stack.http.get(format!("{}/posts/{body_slug}", stack.query)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(&srcset), "{page}");
    for (post, refused_by) in [(post["id"].as_str().unwrap().to_string(), Some("in-the-body")), (body_post, None)] {
        let path = format!("/v1/posts/{post}/unpublish");
        let res = stack.command(reqwest::Method::POST, &path, Some(&token), None, &[]).await;
        assert_eq!(res.status(), 200);
        if let Some(slug) = refused_by {
            let res = stack.command(reqwest::Method::DELETE, &format!("/v1/media/{id}"), Some(&token), None, &[]).await;
            let problem = assert_problem(res, 409).await;
            assert!(problem["detail"].as_str().unwrap().contains(slug), "{problem}");
        }
    }
    let res = stack
        .command(
            reqwest::Method::PATCH,
            &format!("/v1/media/{id}"),
            Some(&token),
            Some(json!({"alt": "Gradient"})),
            &[],
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["alt"], "Gradient");
    let res = stack.command(reqwest::Method::DELETE, &format!("/v1/media/{id}"), Some(&token), None, &[]).await;
    assert_eq!(res.status(), 204);
    stack.db.wait_projected().await;
    // Gone once the query API's in-process entry (2 s) is re-read.
    assert_eq!(until_status(&stack, &url, 404, 40).await, 404, "deleted media still served after 4 s");
    stack.stop().await;
}

#[tokio::test]
async fn a_deleted_image_keeps_posts_from_going_out_or_starting_to_use_it_and_never_slips_past_a_concurrent_publish() {
    let stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    let post = |method: reqwest::Method, path: String, body: Option<Value>| {
        let (stack, token) = (&stack, &token);
        async move { stack.command(method, &path, Some(token), body, &[]).await }
    };
    let bytes = png(40, 30);
    let media = stack.uploaded(&token, "", "image/png", bytes.clone()).await;
    let (id, hash) = (media["id"].as_str().unwrap().to_string(), media["hash"].as_str().unwrap().to_string());
    let res =
        stack.create_post(&token, json!({"title": "Covered draft", "body_markdown": "x", "cover_media_id": id})).await;
    assert_eq!(res.status(), 201);
    let draft = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();

    // A draft's use does not hold the image; once it is gone the draft cannot go out with it.
    assert_eq!(post(reqwest::Method::DELETE, format!("/v1/media/{id}"), None).await.status(), 204);
    let res = post(reqwest::Method::POST, format!("/v1/posts/{draft}/publish"), None).await;
    let problem = assert_problem(res, 409).await;
    assert!(problem["detail"].as_str().unwrap().contains(&id), "{problem}");
    let at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let res = post(reqwest::Method::POST, format!("/v1/posts/{draft}/publish"), Some(json!({"at": at}))).await;
    assert_problem(res, 409).await;
    // It may keep naming the image while it is edited, but no post may start to use it.
    let res = stack.patch_post(&token, &draft, Some("\"1\""), json!({"title": "Still covered"})).await;
    assert_eq!(res.status(), 200);
    let body = format!("![gone](/media/{hash}/640.webp)");
    let res = stack.create_post(&token, json!({"title": "Uses it in the body", "body_markdown": body})).await;
    assert_problem(res, 409).await;
    // Uploaded again, it is there again.
    assert_eq!(stack.upload(&token, "", "image/png", bytes).await.status(), 201);
    assert_eq!(post(reqwest::Method::POST, format!("/v1/posts/{draft}/publish"), None).await.status(), 200);

    // A delete and a publish of a post using the image, at the same moment: exactly one of them wins.
    for round in 0..12u32 {
        let media = stack.uploaded(&token, "", "image/png", png(41 + round, 30)).await;
        let id = media["id"].as_str().unwrap().to_string();
        let title = format!("Race {round}");
        let res = stack.create_post(&token, json!({"title": title, "body_markdown": "x", "cover_media_id": id})).await;
        let draft = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
        let (published, deleted) = tokio::join!(
            post(reqwest::Method::POST, format!("/v1/posts/{draft}/publish"), None),
            post(reqwest::Method::DELETE, format!("/v1/media/{id}"), None),
        );
        let outcome = (published.status().as_u16(), deleted.status().as_u16());
        assert!(
            outcome == (200, 409) || outcome == (409, 204),
            "round {round}: publish and delete answered {outcome:?}"
        );
    }
    stack.stop().await;
}

#[tokio::test]
async fn hostile_or_wrong_files_are_refused_with_nothing_stored_or_appended() {
    let db = TestDb::fresh().await;
    let media_dir = db.media_dir();
    let stack = Stack::start_with(
        db,
        &[
            ("PRESSROOM_MEDIA_MAX_BYTES", "300000"),
            ("PRESSROOM_RATE_LIMIT_WRITES", "0"),
            ("PRESSROOM_RATE_LIMIT_READS", "0"),
        ],
    )
    .await;
    let (_, token) = stack.token(Role::Author).await;
    let svg =
        br#"<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#.to_vec();
    let mut truncated = photo(400, 300);
    truncated.truncate(truncated.len() / 2);
    let mut polyglot = png(20, 20);
    polyglot.extend_from_slice(b"<html><script>alert(document.cookie)</script></html>");
    let mut gif_script = b"GIF89a\x01\x00\x01\x00\x00\x00\x00\x21\xfe\x10<script>x</script>\x00".to_vec();
    gif_script.extend_from_slice(b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b");
    let mut avif = b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf".to_vec();
    avif.extend_from_slice(&[0; 64]);
    let cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        ("svg", "image/svg+xml", svg.clone(), 415),
        ("svg declared as png", "image/png", svg, 415),
        ("text", "text/plain", b"just words, no image".to_vec(), 415),
        ("avif", "image/avif", avif, 415),
        ("png declared as jpeg", "image/jpeg", png(8, 8), 415),
        ("truncated jpeg", "image/jpeg", truncated, 422),
        ("bomb", "image/png", bomb(100_000, 100_000), 422),
        ("png with html after IEND", "image/png", polyglot, 422),
        ("gif with script", "image/gif", gif_script, 422),
        ("over the size limit", "image/jpeg", vec![0xFF; 400_000], 413),
    ];
    for (what, content_type, bytes, status) in cases {
        let res = stack.upload(&token, "", content_type, bytes.clone()).await;
        let problem = assert_problem(res, status).await;
        assert!(problem["detail"].is_string(), "{what}: {problem}");
        let (mp_type, body) = multipart(&bytes, content_type, None);
        let res = stack.upload(&token, "", &mp_type, body).await;
        assert_eq!(res.status().as_u16(), status, "{what} (multipart)");
    }
    let (_, contributor) = stack.token(Role::Contributor).await;
    assert_problem(stack.upload(&contributor, "", "image/png", png(8, 8)).await, 403).await;
    let anonymous = stack.http.post(format!("{}/v1/media", stack.command)).body(png(8, 8)).send().await.unwrap();
    assert_problem(anonymous, 401).await;
    let res = stack
        .create_post(&token, json!({"title": "T", "body_markdown": "b", "cover_media_id": uuid::Uuid::now_v7()}))
        .await;
    assert_problem(res, 422).await;

    let appended: i64 = sqlx::query_scalar("select count(*) from events where stream_type = 'media'")
        .fetch_one(&stack.db.admin)
        .await
        .unwrap();
    assert_eq!(appended, 0);
    let stored = std::fs::read_dir(&media_dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(stored, 0, "objects were stored for refused uploads");
    stack.stop().await;
}

#[tokio::test]
async fn variants_cut_short_by_a_killed_projector_are_made_by_the_next_one() {
    let mut stack = Stack::start(TestDb::fresh().await).await;
    let (_, token) = stack.token(Role::Author).await;
    // Big enough that the variants are still being made when the projector dies.
    let media = stack.uploaded(&token, "", "image/jpeg", photo(6000, 4000)).await;
    let hash = media["hash"].as_str().unwrap().to_string();
    let pending = format!("{}/media/{hash}/1920.webp", stack.query);
    for _ in 0..100 {
        let started: bool = sqlx::query_scalar("select exists (select 1 from read.media where hash = $1)")
            .bind(&hash)
            .fetch_one(&stack.db.admin)
            .await
            .unwrap();
        if started {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stack.kill_projector().await;
    let made_before: i64 = sqlx::query_scalar("select count(*) from read.media where variants_at is not null")
        .fetch_one(&stack.db.admin)
        .await
        .unwrap();
    assert_eq!(made_before, 0, "the variants were done before the kill: the test proves nothing");
    assert_eq!(stack.http.get(&pending).send().await.unwrap().status(), 307);
    let _next = stack.spawn_projector();
    assert_eq!(until_status(&stack, &pending, 200, 600).await, 200, "the next projector never made the variants");
    let status = stack.db.ops(&["media", "status", "--json"]).output().await.unwrap();
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!((status["pending"].as_i64(), status["failing"].as_i64()), (Some(0), Some(0)), "{status}");
}

#[tokio::test]
async fn the_sweep_removes_objects_no_event_names_once_their_grace_is_over() {
    let db = TestDb::fresh().await;
    let store = shared::media::store::MediaStore::open(&db.media_dir().display().to_string()).unwrap();
    let orphan = format!("{:x}", Sha256::digest(b"never recorded"));
    store.put(&format!("{orphan}/original.png"), png(4, 4).into()).await.unwrap();
    let pool = db.app_pool().await;
    let kept = pressroom_projector::media_worker::sweep(&pool, &store, Duration::from_secs(3600)).await.unwrap();
    assert_eq!(kept, 0, "an object inside its grace period was removed");
    let removed = pressroom_projector::media_worker::sweep(&pool, &store, Duration::ZERO).await.unwrap();
    assert_eq!(removed, 1);
    assert!(!store.exists(&format!("{orphan}/original.png")).await.unwrap());
}

/// GETs `url` every 100 ms, at most `tries` times, until it answers `want`; the last status.
async fn until_status(stack: &Stack, url: &str, want: u16, tries: u32) -> u16 {
    let mut status = 0;
    for _ in 0..tries {
        status = stack.http.get(url).send().await.unwrap().status().as_u16();
        if status == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    status
}

/// A PNG whose header claims `w`×`h` pixels, in a few bytes.
fn bomb(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(&mut out, b"IEND", &[]);
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut crc_input = kind.to_vec();
    crc_input.extend_from_slice(data);
    out.extend_from_slice(&crc_input);
    out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}
