-- psql's catalog commands against the namespace.
\dn :ns
\dt :ns.*
\d :ns.t
