-- A post's comment count is kept by two projections: the `comments` projection adds each approval to the
-- post's row, and the `posts` projection, which may be behind it (a replay, a halted projection), counts
-- the approved comments when it first inserts the row. Each takes this per-post advisory lock (for the
-- length of its transaction) before it reads or writes the count, so that whichever commits second sees
-- what the first committed: without it, an approval committing while the row's insert is still open would
-- be in neither.
create function read.post_comment_count_key(post uuid) returns bigint language sql immutable parallel safe as $$
    select hashtextextended('pressroom:comment-count:' || post::text, 0)
$$;
