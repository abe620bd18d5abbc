-- Display names are unique ignoring case (after NFKC normalisation, which the command API applies): a
-- reservation per name, written in the transaction of the event that takes it, like slugs and emails.
create table author_name_reservations (
    name_key  text primary key,
    author_id uuid not null
);
create index author_name_reservations_author_idx on author_name_reservations (author_id);
grant select, insert, update, delete on author_name_reservations to pressroom_app;

-- Every author's current name; where two already share one, the first to register keeps the reservation.
insert into author_name_reservations (name_key, author_id)
select lower(name), stream_id
  from (select distinct on (stream_id) stream_id, payload->>'name' as name, global_position
          from events
         where event_type in ('AuthorRegistered', 'AuthorProfileUpdated') and payload->>'name' is not null
         order by stream_id, version desc) current
 order by global_position
on conflict (name_key) do nothing;
