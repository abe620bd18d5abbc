-- Deleting an image and publishing (or scheduling, or editing in) a post that uses it no longer race.
-- Before, the delete command read the users' status and then appended `MediaDeleted`: a publish committed
-- in between left a published post naming a deleted image. Now both sides meet on a per-image advisory
-- lock: the delete holds it exclusively (shared::write::media::delete) from its check to its commit, and
-- the append of a post event that publishes, schedules or adds a use takes it shared, here, and is refused
-- (SQLSTATE PRM01, the image's id as the message) when the image is deleted.

-- The advisory lock key of an image: one definition for this trigger and the delete command.
create function media_lock_key(media_id uuid) returns bigint language sql immutable parallel safe as $$
    select hashtextextended('pressroom:media:' || media_id::text, 0)
$$;

create or replace function media_uses_track() returns trigger language plpgsql as $$
declare
    had uuid[];
    checked uuid[];
    image uuid;
begin
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
    when (new.stream_type = 'post' and (
        new.event_type in ('PostPublished', 'PostScheduled')
        or (new.event_type = 'PostDrafted'
            and (new.payload ? 'cover_media_id' or strpos(new.payload->>'body_markdown', '/media/') > 0))
        or (new.event_type = 'PostEdited' and (new.payload ? 'cover_media_id' or new.payload ? 'body_markdown'))))
    execute function media_uses_track();
