-- The media-uses trigger's WHEN condition, cut to what keeps drafts out. PostgreSQL reads a row trigger's
-- WHEN from its stored node tree and compiles it again for every statement that fires it, and the appends
-- are one-row statements: the long condition of migration 23 cost an event insert about a fifth of its
-- time even when it was false (pgbench, 8 clients, one-row inserts into a copy of `events`: 15.4-16.4k/s
-- with it, 18.4-21.6k without a trigger, 17.8-18.9k with this one). A draft without images (the common
-- command) still never runs the function; the other post events are sorted out at its top.

create or replace function media_uses_track() returns trigger language plpgsql as $$
declare
    had uuid[];
    checked uuid[];
    image uuid;
begin
    -- The trigger's WHEN lets through every post event but a draft without images: the rest of the filter.
    if not (new.event_type in ('PostPublished', 'PostScheduled', 'PostDrafted')
            or (new.event_type = 'PostEdited' and (new.payload ? 'cover_media_id' or new.payload ? 'body_markdown'))) then
        return null;
    end if;
    if new.event_type in ('PostPublished', 'PostScheduled') then
        -- Going out: every image the post uses must still be there.
        checked := array(select distinct media_id from media_uses where post_id = new.stream_id order by 1);
    else
        had := array(select media_id from media_uses where post_id = new.stream_id);
        if new.payload ? 'cover_media_id' then
            if new.event_type = 'PostEdited' then
                delete from media_uses where post_id = new.stream_id and via = 'cover';
            end if;
            if coalesce(new.payload->>'cover_media_id', '') <> '' then
                insert into media_uses values ((new.payload->>'cover_media_id')::uuid, new.stream_id, 'cover')
                on conflict do nothing;
            end if;
        end if;
        if new.payload ? 'body_markdown' then
            if new.event_type = 'PostEdited' then
                delete from media_uses where post_id = new.stream_id and via = 'body';
            end if;
            insert into media_uses
                select distinct substr(m[1], 1, 32)::uuid, new.stream_id, 'body'
                from regexp_matches(new.payload->>'body_markdown', '/media/([0-9a-f]{64})/', 'g') as m
            on conflict do nothing;
        end if;
        -- A draft may keep naming an image deleted since; it may not start to.
        checked := array(select distinct media_id from media_uses
                         where post_id = new.stream_id and media_id <> all(had) order by 1);
    end if;
    foreach image in array checked loop
        perform pg_advisory_xact_lock_shared(media_lock_key(image));
        if (select event_type from events where stream_id = image and event_type in ('MediaUploaded', 'MediaDeleted')
            order by version desc limit 1) = 'MediaDeleted' then
            raise exception using errcode = 'PRM01', message = image::text;
        end if;
    end loop;
    return null;
end;
$$;

drop trigger events_media_uses on events;
create trigger events_media_uses after insert on events for each row
    when (new.stream_type = 'post' and (new.event_type <> 'PostDrafted' or new.payload ? 'cover_media_id'
                                         or strpos(new.payload->>'body_markdown', '/media/') > 0))
    execute function media_uses_track();
