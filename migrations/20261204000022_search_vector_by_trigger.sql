-- The search vector is a plain column kept by a row trigger instead of a generated column, so that it is
-- computed only when what it is made of changes: PostgreSQL recomputes a generated column on every UPDATE
-- that names one of its inputs, and the projection's upsert names them all — every tag or cover change
-- ran to_tsvector over the whole body twice (for the upsert's proposed row, then for the update). And a rebuild's shadow table, with the same trigger, takes the live vector of every post whose
-- text it rebuilds unchanged instead of computing 200,000 of them again: to_tsvector was three quarters of a
-- rebuild's time.

-- What a post is searched by: its title, summary and Markdown body, weighted A, B, C, while it is published.
create function read.post_search_vector(title text, summary text, body text, status text) returns tsvector
language sql immutable parallel safe as $$
    select case when status = 'published' then
        setweight(to_tsvector('english', coalesce(title, '')), 'A') ||
        setweight(to_tsvector('english', coalesce(summary, '')), 'B') ||
        setweight(to_tsvector('english', coalesce(body, '')), 'C')
    end
$$;

-- Keeps `search`: a row whose text and status are what they were keeps its vector — on an update, the old
-- row's; on an insert (the projection's upserts try one first; a rebuild's shadow table inserts every post),
-- the vector of the row with the same id and the same text in `read.posts`, the live table: the same
-- immutable function of the same text. Any other row's is computed.
create function read.posts_search() returns trigger language plpgsql as $$
begin
    if tg_op = 'UPDATE' then
        if (new.title, new.summary, new.body_markdown, new.status)
                is not distinct from (old.title, old.summary, old.body_markdown, old.status) then
            new.search := old.search;
            return new;
        end if;
    else
        select l.search into new.search from read.posts l
        where l.id = new.id
          and (l.title, l.summary, l.body_markdown, l.status)
              is not distinct from (new.title, new.summary, new.body_markdown, new.status);
        if found then
            return new;
        end if;
    end if;
    new.search := read.post_search_vector(new.title, new.summary, new.body_markdown, new.status);
    return new;
end
$$;

alter table read.posts drop column search;
alter table read.posts add column search tsvector;
alter table read.posts alter column search set compression lz4;
update read.posts set search = read.post_search_vector(title, summary, body_markdown, status)
where status = 'published';
create trigger posts_search before insert or update on read.posts
    for each row execute function read.posts_search();
create index posts_search_idx on read.posts using gin (search) where status = 'published';
