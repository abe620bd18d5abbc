-- The slug history answers one question: which post did this old slug belong to (for a 301)? A post's
-- current slug is found in `posts` first, so the history now keeps only the slugs a post no longer has:
-- creating a post no longer writes a history row (an upsert, its WAL and the replica's replay of it, on
-- every draft). The projection writes the old slug when a post's slug changes and drops the new one from
-- the history (a post can return to an earlier slug); the rebuild folds the same way.
delete from read.slug_history h using read.posts p where h.post_id = p.id and h.slug = p.slug;
