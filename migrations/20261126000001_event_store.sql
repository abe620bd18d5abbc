-- The event store: the only source of truth. Append-only, enforced by the database for every role.
create table events (
    global_position bigint generated always as identity primary key,
    event_id        uuid        not null unique,
    stream_id       uuid        not null,
    stream_type     text        not null,
    version         int         not null check (version > 0),
    event_type      text        not null,
    schema_version  smallint    not null default 1,
    payload         jsonb       not null,
    metadata        jsonb       not null default '{}'::jsonb,
    recorded_at     timestamptz not null default now(),
    transaction_id  xid8        not null default pg_current_xact_id(),
    constraint events_stream_version_key unique (stream_id, version)
);

-- Global readers walk the log in (transaction_id, global_position) order below the snapshot horizon.
create index events_transaction_position_idx on events (transaction_id, global_position);

create function events_reject_change() returns trigger language plpgsql as $$
begin
    raise exception 'events is append-only: % is not allowed', tg_op
        using errcode = 'P0001', hint = 'append a compensating event instead';
end;
$$;

create trigger events_no_update_delete before update or delete on events
    for each row execute function events_reject_change();
create trigger events_no_truncate before truncate on events
    for each statement execute function events_reject_change();

-- Wake projectors: one notification per appending statement, delivered at commit.
create function events_notify() returns trigger language plpgsql as $$
begin
    perform pg_notify('pressroom_events', '');
    return null;
end;
$$;
create trigger events_notify after insert on events
    for each statement execute function events_notify();

-- Reservations: uniqueness that spans streams, written in the same transaction as the claiming event.
create table slug_reservations (
    slug        text primary key,
    post_id     uuid not null,
    reserved_at timestamptz not null default now()
);
create index slug_reservations_post_idx on slug_reservations (post_id);

create table author_slug_reservations (
    slug        text primary key,
    author_id   uuid not null,
    reserved_at timestamptz not null default now()
);

-- Author credentials: the email reservation plus the password hash, kept out of the event log so that
-- hashes never reach projections, webhooks or `events tail`.
create table author_credentials (
    author_id     uuid primary key,
    email         text not null unique,
    password_hash text not null,
    updated_at    timestamptz not null default now()
);

-- The application role appends and reads events; it can never change them.
do $$ begin
    if not exists (select from pg_roles where rolname = 'pressroom_app') then
        create role pressroom_app login;
    end if;
end $$;
grant select, insert on events to pressroom_app;
grant select, insert, update, delete on slug_reservations, author_slug_reservations, author_credentials to pressroom_app;
