-- Webhook delivery: each subscription walks the log with its own checkpoint, delivering in order; every
-- attempt is logged; an event that exhausts its retries is dead-lettered and the subscription moves on.
alter table webhook_subscriptions
    add column checkpoint_tx       xid8        not null default '0'::xid8,
    add column checkpoint_position bigint      not null default 0,
    add column attempts            int         not null default 0,
    add column next_attempt_at     timestamptz not null default now(),
    add column last_error          text;

create table webhook_deliveries (
    id               bigint generated always as identity primary key,
    subscription_id  uuid        not null,
    event_id         uuid        not null,
    global_position  bigint      not null,
    attempt          int         not null,
    status_code      int,
    error            text,
    succeeded        boolean     not null,
    attempted_at     timestamptz not null default now()
);
create index webhook_deliveries_subscription_idx on webhook_deliveries (subscription_id, attempted_at);

create table webhook_dead_letters (
    id               bigint generated always as identity primary key,
    subscription_id  uuid        not null,
    event_id         uuid        not null,
    global_position  bigint      not null,
    attempts         int         not null,
    last_error       text        not null,
    dead_at          timestamptz not null default now()
);

grant select, insert, update, delete on webhook_deliveries, webhook_dead_letters to pressroom_app;
