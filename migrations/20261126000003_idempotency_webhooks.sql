-- Idempotency keys: a retry with the same key and body replays the stored reply instead of appending again.
create table idempotency_keys (
    principal       text        not null,   -- 'author:<id>' or 'ip:<addr>'
    method          text        not null,
    path            text        not null,
    key             text        not null,
    request_hash    text        not null,
    status_code     int,                     -- null while the first request is in flight
    response_headers jsonb,
    response_body   bytea,
    created_at      timestamptz not null default now(),
    completed_at    timestamptz,
    primary key (principal, method, path, key)
);
create index idempotency_keys_created_idx on idempotency_keys (created_at);

-- Webhook subscriptions (admin configuration, not domain events). The projector's `webhooks`
-- projection reads them; each delivers events after `from_position`.
create table webhook_subscriptions (
    id            uuid primary key,
    url           text        not null,
    events        text[]      not null,
    secret        text        not null,
    from_position bigint      not null,
    created_by    uuid,
    created_at    timestamptz not null default now(),
    deleted_at    timestamptz
);

grant select, insert, update, delete on idempotency_keys, webhook_subscriptions to pressroom_app;
