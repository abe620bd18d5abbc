-- Large values (post bodies in events and in the read table, rendered HTML, search vectors) are compressed
-- with lz4 instead of PostgreSQL's default pglz when they are stored out of line: pglz was 7% of a rebuild's
-- write phase and lz4 compresses several times faster and decompresses faster still (reads, checksums,
-- the rebuild's fold). Existing values keep their compression until rewritten; both are read transparently.
alter table events alter column payload set compression lz4;
alter table read.posts
    alter column body_markdown set compression lz4,
    alter column body_html set compression lz4,
    alter column search set compression lz4;
