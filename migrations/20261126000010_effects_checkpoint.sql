-- How far a projection's after-commit side effects (Redis write-through) are known to have landed.
-- Behind the checkpoint after a crash or a Redis outage: the leader re-does the effects from here.
alter table read.checkpoints
    add column effects_transaction_id xid8,
    add column effects_position bigint;
