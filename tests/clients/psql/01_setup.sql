-- Creates the namespace and a small table; :ns and :create_schema come from test.sh.
\set QUIET on
:create_schema :ns;
CREATE TABLE :ns.t (id BIGINT PRIMARY KEY, name TEXT NOT NULL, price NUMERIC(10,2), tags TEXT[], created TIMESTAMPTZ, ok BOOLEAN, data JSONB);
\set QUIET off
INSERT INTO :ns.t VALUES (1, 'apple', 1.50, '{red,green}', '2024-02-29 13:45:56.123456+00', true, '{"a": 1}'),
                         (2, 'pear', NULL, '{}', NULL, false, NULL),
                         (3, 'o''range', 10, '{"with space",NULL}', '2000-01-01 00:00:00+00', NULL, '[1, 2]');
SET TimeZone = 'UTC';
SELECT * FROM :ns.t ORDER BY id;
SELECT count(*) AS n, sum(price) AS total FROM :ns.t;
UPDATE :ns.t SET price = price * 2 WHERE id = 1 RETURNING id, price;
INSERT INTO :ns.t (id, name) VALUES (2, 'dup') ON CONFLICT (id) DO NOTHING;
\x on
SELECT id, name, tags FROM :ns.t WHERE id = 3;
\x off
