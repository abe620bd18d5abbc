-- Audit of operator decisions to skip an event a projection cannot apply (`pressroom-ops projections skip`).
create table projection_skips (
    id              bigint generated always as identity primary key,
    projection      text        not null,
    global_position bigint      not null,
    event_id        uuid        not null,
    event_type      text        not null,
    reason          text        not null,
    skipped_by      text        not null,
    error           text,
    skipped_at      timestamptz not null default now()
);
grant select on projection_skips to pressroom_app;
