//! Query plans: at 100k posts the list, filters and search read indexes, never a sequential scan of
//! `read.posts`. The rows are generated straight into the read table (the plan is what is under test).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use pressroom_tests::TestDb;

async fn plan(db: &TestDb, sql: &str) -> String {
    let rows: Vec<(String,)> = sqlx::query_as(&format!("explain {sql}")).fetch_all(&db.admin).await.unwrap();
    rows.into_iter().map(|r| r.0).collect::<Vec<_>>().join("\n")
}

#[tokio::test]
async fn list_filter_and_search_queries_use_indexes_at_100k_posts() {
    let db = TestDb::fresh().await;
    sqlx::query(
        r#"insert into read.post_authors (id, slug, name) select ('00000000-0000-0000-0000-' || lpad(a::text, 12, '0'))::uuid,
               'author-' || a, 'Author ' || a from generate_series(1, 50) a"#,
    )
    .execute(&db.admin)
    .await
    .unwrap();
    sqlx::query(
        r#"insert into read.posts (id, slug, status, title, summary, body_markdown, body_html, tags, author_id, author,
                                  reading_time_minutes, version, created_at, updated_at, published_at,
                                  last_transaction_id, last_position)
           select gen_random_uuid(), 'post-' || n, case when n % 10 = 0 then 'draft' else 'published' end,
                  'Post number ' || n, 'Summary ' || n, 'Body text about topic' || (n % 100) || ' and replication',
                  '<p>x</p>', jsonb_build_array(jsonb_build_object('slug', 'tag-' || (n % 200), 'name', 'Tag ' || (n % 200))),
                  ('00000000-0000-0000-0000-' || lpad((n % 50 + 1)::text, 12, '0'))::uuid, '{}'::jsonb, 1, 2,
                  now(), now(), now() - n * interval '1 minute', '1'::xid8, n
           from generate_series(1, 100000) n"#,
    )
    .execute(&db.admin)
    .await
    .unwrap();
    sqlx::query("analyze read.posts").execute(&db.admin).await.unwrap();
    let queries = [
        // page 1 and a deep keyset page of the public list
        "select id from read.posts where status = 'published' order by published_at desc, id desc limit 21",
        "select id from read.posts where status = 'published' and (published_at, id) < (now() - interval '50000 minutes', '00000000-0000-0000-0000-000000000000'::uuid) order by published_at desc, id desc limit 21",
        // tag and author filters
        "select id from read.posts where status = 'published' and tags @> '[{\"slug\": \"tag-7\"}]' order by published_at desc, id desc limit 21",
        "select id from read.posts where status = 'published' and author_id = '00000000-0000-0000-0000-000000000007' order by published_at desc, id desc limit 21",
        // search
        "select id from read.posts, websearch_to_tsquery('english', 'topic42') q where status = 'published' and search @@ q order by ts_rank(search, q) desc, id desc limit 21",
        // by slug
        "select id from read.posts where slug = 'post-77'",
    ];
    for sql in queries {
        let p = plan(&db, sql).await;
        assert!(!p.contains("Seq Scan on posts"), "sequential scan for\n{sql}\n{p}");
        assert!(p.contains("Index") || p.contains("Bitmap"), "no index for\n{sql}\n{p}");
    }
}
