-- \copy in (CSV with header, from a file) and out (text and CSV). psql does not expand variables in
-- \copy, so test.sh replaces @NS@ and @COPY_FILE@ before running this file.
\copy @NS@.t (id, name, price, tags, ok) FROM '@COPY_FILE@' WITH (FORMAT csv, HEADER)
SELECT id, name, price, tags, ok FROM @NS@.t WHERE id >= 20 ORDER BY id;
\copy (SELECT id, name, price, tags, ok FROM @NS@.t WHERE id >= 20 ORDER BY id) TO STDOUT
\copy (SELECT id, name, price, tags, ok FROM @NS@.t WHERE id >= 20 ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)
