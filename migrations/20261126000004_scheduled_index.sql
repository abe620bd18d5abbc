-- The scheduler looks for due scheduled posts every second.
create index posts_scheduled_idx on read.posts (scheduled_at) where status = 'scheduled';
