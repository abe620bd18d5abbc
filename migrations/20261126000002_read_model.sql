-- Read model: derived data, rebuilt from the event log at will. Streams to the replicas.
create schema read;

-- One checkpoint per projection, advanced in the same transaction as its writes.
create table read.checkpoints (
    name            text primary key,
    transaction_id  xid8        not null default '0'::xid8,
    global_position bigint      not null default 0,
    state           text        not null default 'running',
    error           text,
    updated_at      timestamptz not null default now()
);

-- Authors as the posts projection needs them to denormalise into post rows.
create table read.post_authors (
    id         uuid primary key,
    slug       text not null,
    name       text not null,
    avatar_url text
);

create table read.posts (
    id                   uuid primary key,
    slug                 text        not null unique,
    status               text        not null,
    title                text        not null,
    summary              text,
    body_markdown        text        not null,
    body_html            text        not null,
    cover_image_url      text,
    tags                 jsonb       not null default '[]'::jsonb,
    author_id            uuid        not null,
    author               jsonb       not null,
    reading_time_minutes int         not null,
    comment_count        int         not null default 0,
    version              int         not null,
    created_at           timestamptz not null,
    updated_at           timestamptz not null,
    published_at         timestamptz,
    scheduled_at         timestamptz,
    -- The projection order of the post's last applied event: its consistency token.
    last_transaction_id  xid8        not null,
    last_position        bigint      not null
);

-- Public list: newest first by (published_at, id), published only; keyset pagination walks this index.
create index posts_published_idx on read.posts (published_at desc, id desc) where status = 'published';
create index posts_author_idx on read.posts (author_id, published_at desc, id desc) where status = 'published';
create index posts_tags_idx on read.posts using gin (tags jsonb_path_ops) where status = 'published';

-- Every slug a post ever had, for 301s from old slugs.
create table read.slug_history (
    slug    text primary key,
    post_id uuid not null
);

grant usage on schema read to pressroom_app;
grant select, insert, update, delete on all tables in schema read to pressroom_app;
alter default privileges in schema read grant select, insert, update, delete on tables to pressroom_app;
