-- View batches already counted: the stats job records each batch (a Redis hash it took whole) in the
-- transaction that adds its views, so a batch left behind by a failed run is counted exactly once by
-- whichever run takes it next. Rows older than a week are purged by the retention job.
create table read.view_batches (
    batch      text        primary key,
    applied_at timestamptz not null default now()
);
create index view_batches_applied_idx on read.view_batches (applied_at);
grant select, insert, update, delete on read.view_batches to pressroom_app;
