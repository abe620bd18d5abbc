-- No JIT compilation for this database's queries. Its queries are short and keyed, but a few correlated
-- ones are estimated expensive (the projections' lag: a count per checkpoint, with `read.checkpoints`
-- estimated at hundreds of rows) and crossed `jit_above_cost`: the projector's lag gauges, every 5 s, spent
-- 75 ms compiling a 0.1 ms query on a quiet machine and 450-680 ms on a loaded one — a stall of one core
-- that showed up in every freshness and command benchmark. Takes effect for new sessions.
do $$
begin
    execute format('alter database %I set jit = off', current_database());
end
$$;
