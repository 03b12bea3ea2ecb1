\set id random(1, 1000000000)
INSERT INTO bench.kv (id, v, n) VALUES (:id, 'value-' || :id, :id) ON CONFLICT (id) DO NOTHING;
