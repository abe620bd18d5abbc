//! The media store on S3: the same upload, variant and read path against a real S3-compatible server
//! (Garage, built from crates.io and started by `ops/lib/garage.sh`). Opt-in — `./ops/test --s3` — because
//! building Garage costs minutes; without it the test is ignored, never passed vacuously.

use std::time::Duration;

use pressroom_tests::{Stack, TestDb};
use sha2::{Digest, Sha256};
use shared::domain::role::Role;

/// `PRESSROOM_TEST_S3_BUCKET` and the `AWS_*` variables `ops/lib/garage.sh` prints.
fn s3_env() -> Vec<(String, String)> {
    let bucket = std::env::var("PRESSROOM_TEST_S3_BUCKET").expect("PRESSROOM_TEST_S3_BUCKET (./ops/test --s3 sets it)");
    let mut env: Vec<(String, String)> =
        ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT", "AWS_REGION", "AWS_ALLOW_HTTP"]
            .iter()
            .map(|k| (k.to_string(), std::env::var(k).unwrap_or_else(|_| panic!("{k} (./ops/test --s3 sets it)"))))
            .collect();
    env.push(("PRESSROOM_TEST_S3_BUCKET".into(), bucket));
    env
}

#[tokio::test]
#[ignore = "needs an S3 server: ./ops/test --s3 starts Garage"]
async fn uploads_variants_reads_and_the_sweep_work_on_an_s3_compatible_store() {
    // The services inherit the AWS_* variables from this process, as `MediaStore::open` here reads them.
    let env = s3_env();
    let bucket = &env.iter().find(|(k, _)| k == "PRESSROOM_TEST_S3_BUCKET").unwrap().1;
    let db = TestDb::fresh().await;
    let store_url = format!("s3://{bucket}/{}", db.name);
    let stack = Stack::start_with(
        db,
        &[
            ("PRESSROOM_MEDIA_STORE", &store_url),
            ("PRESSROOM_RATE_LIMIT_WRITES", "0"),
            ("PRESSROOM_RATE_LIMIT_READS", "0"),
        ],
    )
    .await;
    let (_, token) = stack.token(Role::Author).await;
    let photo = pressroom_tests::picture(1500, 900, image::ImageFormat::Jpeg);
    let media = stack.uploaded(&token, "", "image/jpeg", photo).await;
    let hash = media["hash"].as_str().unwrap().to_string();

    // The objects are in the bucket, under the prefix, at their keys.
    let store = shared::media::store::MediaStore::open(&store_url).unwrap();
    let original = store.get(&format!("{hash}/original.jpg")).await.unwrap().expect("the original in S3");
    assert_eq!(format!("{:x}", Sha256::digest(&original)), hash);
    let served = stack.http.get(format!("{}/media/{hash}/original.jpg", stack.query)).send().await.unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.bytes().await.unwrap(), original);
    let part = stack
        .http
        .get(format!("{}/media/{hash}/original.jpg", stack.query))
        .header("range", "bytes=-16")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap(), original.slice(original.len() - 16..));

    let mut made = false;
    for _ in 0..300 {
        let res = stack.http.get(format!("{}/media/{hash}/1280.webp", stack.query)).send().await.unwrap();
        if res.status() == 200 {
            let webp = image::load_from_memory(&res.bytes().await.unwrap()).unwrap();
            assert_eq!((webp.width(), webp.height()), (1280, 768));
            made = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(made, "the 1280 variant was never made on S3");
    assert!(store.exists(&format!("{hash}/640.webp")).await.unwrap());

    // An object no event names is swept from the bucket once its grace is over; recorded media stays.
    let orphan = format!("{:x}", Sha256::digest(b"an upload whose append failed"));
    store.put(&format!("{orphan}/original.png"), b"not recorded".to_vec().into()).await.unwrap();
    let pool = stack.db.app_pool().await;
    let removed = pressroom_projector::media_worker::sweep(&pool, &store, Duration::ZERO).await.unwrap();
    assert_eq!(removed, 1);
    assert!(!store.exists(&format!("{orphan}/original.png")).await.unwrap());
    assert!(store.exists(&format!("{hash}/original.jpg")).await.unwrap());
    stack.stop().await;
}
