-- The public author directory lists only active authors with a published post: the read model learns
-- which authors were deactivated (AuthorDeactivated is final, so the log decides it for existing rows).
alter table read.post_authors add column active boolean not null default true;
update read.post_authors a set active = false
 where exists (select 1 from events e where e.stream_id = a.id and e.event_type = 'AuthorDeactivated');
create index post_authors_directory_idx on read.post_authors (name, id) where post_count > 0 and active;
