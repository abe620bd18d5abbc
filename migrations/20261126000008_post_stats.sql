-- Page views (counted in Redis by the query API, flushed here by the projector's cron job) and the
-- trending score recomputed from them: views / (age_hours + 2)^1.5.
create table read.post_stats (
    post_id    uuid primary key,
    views      bigint      not null default 0,
    score      float8      not null default 0,
    updated_at timestamptz not null default now()
);
create index post_stats_score_idx on read.post_stats (score desc, post_id);
grant select, insert, update, delete on read.post_stats to pressroom_app;
