\set id random(1, 10000)
SELECT id, v, n FROM bench.kv WHERE id = :id;
