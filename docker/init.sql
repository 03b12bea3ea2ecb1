-- Run by the strata-init service of docker/compose.yaml at every `up`; safe to
-- run again. psql passes the MinIO credentials in as variables:
--   psql -v access_key_id=... -v secret_access_key=... -f init.sql
-- (neither may contain a double quote or a backslash: they are pasted into JSON).

\set credentials '{"access_key_id":"' :access_key_id '","secret_access_key":"' :secret_access_key '"}'

-- The cold-tier storage `s3main`: bucket `strata` (made by the createbucket
-- service), objects under the prefix `cold/`. MinIO takes any region name;
-- its endpoint is plain HTTP on the compose network. CREATE STORAGE writes and
-- deletes a small probe object first, so a wrong bucket or key fails here.
CREATE STORAGE IF NOT EXISTS s3main
  TYPE 's3'
  PATH 's3://strata/cold'
  REGION 'us-east-1'
  ENDPOINT 'http://minio:9000'
  CREDENTIALS :'credentials'
  DESCRIPTION 'MinIO bucket of docker/compose.yaml';
