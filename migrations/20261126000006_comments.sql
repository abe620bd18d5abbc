-- Comments as readers see them (approved only are served) and as moderators track them.
create table read.comments (
    id           uuid primary key,
    post_id      uuid        not null,
    author_name  text        not null,
    body         text        not null,
    status       text        not null,
    version      int         not null,
    created_at   timestamptz not null,
    approved_at  timestamptz
);
create index comments_approved_idx on read.comments (post_id, created_at, id) where status = 'approved';

grant select, insert, update, delete on read.comments to pressroom_app;
