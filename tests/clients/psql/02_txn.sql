-- Transactions: a committed block is visible, a rolled-back one is not, and an error aborts the block.
BEGIN;
INSERT INTO :ns.t (id, name) VALUES (10, 'committed');
COMMIT;
BEGIN;
INSERT INTO :ns.t (id, name) VALUES (11, 'rolled back');
DELETE FROM :ns.t WHERE id = 1;
ROLLBACK;
SELECT id, name FROM :ns.t WHERE id IN (1, 10, 11) ORDER BY id;
