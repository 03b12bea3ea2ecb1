\set lo random(1, 9900)
SELECT count(*), sum(n) FROM bench.kv WHERE id BETWEEN :lo AND :lo + 100;
