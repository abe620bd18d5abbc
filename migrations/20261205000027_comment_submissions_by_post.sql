-- The comments submitted to a post, found in the event store by the post they name: the read-your-writes
-- fallback folds a post whose projection is behind a reader's token from its events, and its comment count
-- and approved comments from theirs (a post's comments are separate streams that only their submission
-- links to it). Partial: only submissions are indexed, so no other append pays for it.
create index events_comment_post_idx on events ((payload ->> 'post_id')) where event_type = 'CommentSubmitted';
