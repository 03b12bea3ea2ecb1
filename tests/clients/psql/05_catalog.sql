-- More of psql's catalog commands: verbose describe (storage, defaults, access method), schemas with
-- access privileges, functions, views and indexes of the namespace.
\d+ :ns.t
\dn+ :ns
\df :ns.*
\dv :ns.*
\di :ns.*
