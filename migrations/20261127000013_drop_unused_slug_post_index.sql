-- Nothing looks slug reservations up by post (every query is by slug, the primary key): the index only cost
-- every draft an extra index insert, its WAL, and the replica's replay of it.
drop index slug_reservations_post_idx;
