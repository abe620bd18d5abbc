-- Author and tag listings with published-post counts, kept by the posts projection, and full-text search.
alter table read.post_authors
    add column bio text,
    add column post_count int not null default 0;

create table read.tags (
    slug       text primary key,
    name       text not null,
    post_count int  not null default 0
);
create index tags_post_count_idx on read.tags (post_count desc, slug);

-- Title weighs more than summary, summary more than body.
alter table read.posts add column search tsvector generated always as (
    setweight(to_tsvector('english', coalesce(title, '')), 'A') ||
    setweight(to_tsvector('english', coalesce(summary, '')), 'B') ||
    setweight(to_tsvector('english', coalesce(body_markdown, '')), 'C')
) stored;
create index posts_search_idx on read.posts using gin (search) where status = 'published';

grant select, insert, update, delete on read.tags to pressroom_app;
