-- pgbench baseline: the same single-row event INSERT the command path makes, into a copy of `events`.
insert into bench_events (event_id, stream_id, stream_type, version, event_type, schema_version, payload, metadata)
values (gen_random_uuid(), gen_random_uuid(), 'post', 1, 'PostDrafted', 1,
        '{"title":"bench","body_markdown":"A **bench** post body."}', '{}');
