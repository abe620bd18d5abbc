-- Only published posts are searched (the search index and every search query are `status = 'published'`),
-- yet every draft save computed the search vector of its whole body. Now a row carries the vector only
-- while it is published: drafts, scheduled and deleted posts skip to_tsvector (and its WAL and replay).
-- PostgreSQL 15 cannot change a generated expression in place: the column is added anew (the table is
-- rewritten once) and its index rebuilt.
alter table read.posts drop column search;
alter table read.posts add column search tsvector generated always as (
    case when status = 'published' then
        setweight(to_tsvector('english', coalesce(title, '')), 'A') ||
        setweight(to_tsvector('english', coalesce(summary, '')), 'B') ||
        setweight(to_tsvector('english', coalesce(body_markdown, '')), 'C')
    end
) stored;
alter table read.posts alter column search set compression lz4;
create index posts_search_idx on read.posts using gin (search) where status = 'published';
