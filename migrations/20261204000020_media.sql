-- Media: uploaded images (bytes in the object store, facts in the log), the posts that use them, and
-- the read table the projector keeps (with the state of each image's responsive variants).

-- Write side: which posts use which media, as a cover or as an image in the body (a URL under
-- /media/<sha256>/; the media id is the hash's first 128 bits). Kept by the event store itself in the
-- appending statement, so no command path can forget it; deleting media checks it.
create table media_uses (
    media_id uuid not null,
    post_id  uuid not null,
    via      text not null check (via in ('cover', 'body')),
    primary key (media_id, post_id, via)
);
create index media_uses_post_idx on media_uses (post_id);

create function media_uses_track() returns trigger language plpgsql as $$
begin
    if new.event_type = 'PostDrafted' or new.payload ? 'cover_media_id' then
        delete from media_uses where post_id = new.stream_id and via = 'cover';
        if coalesce(new.payload->>'cover_media_id', '') <> '' then
            insert into media_uses values ((new.payload->>'cover_media_id')::uuid, new.stream_id, 'cover')
            on conflict do nothing;
        end if;
    end if;
    if new.payload ? 'body_markdown' then
        delete from media_uses where post_id = new.stream_id and via = 'body';
        insert into media_uses
            select distinct substr(m[1], 1, 32)::uuid, new.stream_id, 'body'
            from regexp_matches(new.payload->>'body_markdown', '/media/([0-9a-f]{64})/', 'g') as m
        on conflict do nothing;
    end if;
    return null;
end;
$$;

create trigger events_media_uses after insert on events for each row
    when (new.stream_type = 'post' and new.event_type in ('PostDrafted', 'PostEdited'))
    execute function media_uses_track();

grant select, insert, delete on media_uses to pressroom_app;

-- Read side: every image, and its variants (derived data: the variant worker fills `variant_widths` and
-- sets `variants_at` when all are made; a reset of the row makes them again).
create table read.media (
    id               uuid primary key,
    hash             text not null,
    kind             text not null,
    width            int not null,
    height           int not null,
    size             bigint not null,
    alt              text,
    uploaded_by      uuid not null,
    uploaded_at      timestamptz not null,
    version          int not null,
    deleted          boolean not null default false,
    variant_widths   int[] not null default '{}',
    variants_at      timestamptz,
    variant_attempts int not null default 0,
    variant_error    text,
    variant_retry_at timestamptz
);
create unique index media_hash_idx on read.media (hash);
create index media_variants_pending_idx on read.media (uploaded_at) where variants_at is null and not deleted;

alter table read.posts add column cover_media_id uuid;
create index posts_cover_media_idx on read.posts (cover_media_id) where cover_media_id is not null;
