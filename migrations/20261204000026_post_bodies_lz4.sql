-- A post's Markdown and HTML bodies are compressed with lz4 instead of PostgreSQL's default pglz, as the
-- search vector already is. A row with both bodies is over the 2 kB TOAST threshold, so every write of a
-- post compressed them: with pglz, COPY of 100,000 rows (4.5 kB of body each) took 4.9-6.2 s, with lz4
-- 2.6-2.9 s on the same machine — a rebuild writes every post, the projector every edited one — and reading
-- them back (readers, the rebuild's checksums) decompresses faster as well. Values already stored keep
-- their compression until rewritten; a rebuild's shadow tables take this setting with the rest of the shape.
alter table read.posts alter column body_markdown set compression lz4, alter column body_html set compression lz4;
