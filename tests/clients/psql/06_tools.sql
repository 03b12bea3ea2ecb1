-- Catalog queries of GUI/BI tools, replayed as the tools send them (issue 14): DBeaver's navigator
-- (connect, databases, schemas, data types, tables, columns, constraints, indexes, statistics) and
-- Metabase's connect and sync (schemas, table privileges, tables, fields, primary keys, foreign keys,
-- indexes, row samples).
--
-- Sources (read from the tools' code):
--   DBeaver: github.com/dbeaver/dbeaver @ 2428359b (2024-10-24),
--            plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/...
--   Metabase: github.com/metabase/metabase src/metabase/driver/postgres.clj (get-tables-sql,
--            describe-fields-sql, describe-fks-sql, describe-indexes-sql, current-user-table-privileges,
--            db-default-timezone, enum-types, set-timezone-sql) and
--            src/metabase/driver/sql_jdbc/sync/describe_database.clj / describe_table.clj (which call
--            pgjdbc's DatabaseMetaData getSchemas / getColumns / getPrimaryKeys); the text below is the
--            SQL as a Metabase v0.62 sync sends it (HoneySQL-rendered: quoted identifiers, upper-case
--            function names), with the bound parameters substituted.
--
-- Parameters (JDBC `?`, `$n`) are replaced by their concrete values: the namespace is @NS@, the tables
-- @NS@.t (from 01_setup.sql) and @NS@.orders (below); oids a tool would have read earlier are taken
-- with \gset and substituted as integer literals, as DBeaver's setLong binds them.
-- A query whose result holds values that legitimately differ between PostgreSQL and Strata (oids,
-- sizes, row estimates, version strings, the database name) is run twice: as sent with its output
-- discarded (\o /dev/null; it must not fail), then wrapped as `SELECT <the columns the tool reads> FROM
-- (<query as sent>) q` with the volatile ones reduced to `IS NOT NULL` or left out. (In the wrapped copy the
-- leading `x.oid,` of DBeaver's `SELECT x.oid,x.*` is left out: PostgreSQL refuses to name the duplicated
-- column of a derived table, "column reference "oid" is ambiguous".) NULL prints as (null), to tell it
-- from an empty string.
\set QUIET on
CREATE TABLE @NS@.orders (id INT PRIMARY KEY, t_id BIGINT NOT NULL, qty SMALLINT DEFAULT 1,
                          status TEXT NOT NULL DEFAULT 'new', note VARCHAR(20), placed TIMESTAMP);
INSERT INTO @NS@.orders VALUES (10, 1, 2, 'paid', 'first', '2024-03-01 10:00:00'), (11, 3, 1, 'new', NULL, NULL);
SELECT current_database() AS db \gset
SELECT n.oid AS ns_oid FROM pg_catalog.pg_namespace n WHERE n.nspname = '@NS@' \gset
SELECT c.oid AS t_oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = '@NS@' AND c.relname = 't' \gset
SELECT c.oid AS orders_oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = '@NS@' AND c.relname = 'orders' \gset
SELECT c.oid AS t_pkey_oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = '@NS@' AND c.relname = 't_pkey' \gset
\pset null '(null)'
\set QUIET off

-------------------------------------------------------------------------------------------------------
-- DBeaver
-------------------------------------------------------------------------------------------------------

-- [D1] model/PostgreDataSource.java prepareReadDatabaseListStatement (bootstrap connection; templates
-- hidden, the connection's database added back with `OR db.datname =?`)
\o /dev/null
SELECT db.oid,db.* FROM pg_catalog.pg_database db WHERE 1 = 1 AND datallowconn AND NOT datistemplate OR db.datname =:'db'
ORDER BY db.datname;
\o
SELECT q.datname = :'db' AS is_connection_db, q.datallowconn, q.datistemplate,
       pg_catalog.pg_get_userbyid(q.datdba) IS NOT NULL AS has_owner
FROM (SELECT db.* FROM pg_catalog.pg_database db WHERE 1 = 1 AND datallowconn AND NOT datistemplate OR db.datname =:'db'
ORDER BY db.datname) q WHERE q.datname = :'db';

-- [D2] model/PostgreDataSource.java initialize: server version (DBeaver parses "PostgreSQL <major>.<minor>")
\o /dev/null
SELECT version();
\o
SELECT split_part(version(), ' ', 1) AS product, split_part(split_part(version(), ' ', 2), '.', 1) AS major;

-- [D3] PostgreUtils.java getQueryForSystemColumnChecking, called by PostgreDataSource.initialize
-- (pg_enum, pg_class.reltype) and PostgreDatabase.supportsSysTypCategoryColumn (pg_type.typcategory)
SELECT * FROM pg_catalog.pg_enum WHERE 1<>1 LIMIT 1;
SELECT reltype FROM pg_catalog.pg_class WHERE 1<>1 LIMIT 1;
SELECT typcategory FROM pg_catalog.pg_type WHERE 1<>1 LIMIT 1;

-- [D4] model/PostgreExecutionContext.java refreshDefaults: active schema, user and search_path
SELECT current_schema(),session_user;
SHOW search_path;

-- [D5] model/PostgreDatabase.java SchemaCache.prepareLookupStatement (the schema list of the navigator)
\o /dev/null
SELECT n.oid,n.*,d.description FROM pg_catalog.pg_namespace n
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=n.oid AND d.objsubid=0 AND d.classoid='pg_namespace'::regclass
 ORDER BY nspname;
\o
SELECT q.nspname,
       CASE WHEN q.nspname = '@NS@' THEN pg_catalog.pg_get_userbyid(q.nspowner) END AS owner, q.description
FROM (SELECT n.*,d.description FROM pg_catalog.pg_namespace n
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=n.oid AND d.objsubid=0 AND d.classoid='pg_namespace'::regclass
 ORDER BY nspname) q
WHERE q.nspname IN ('@NS@', 'public', 'pg_catalog', 'information_schema') ORDER BY q.nspname = '@NS@', q.nspname;

-- [D6] model/PostgreDatabase.java cacheDataTypes (server >= 10, default "read all types" off); the
-- built-in types of the test tables' columns
\o /dev/null
SELECT t.oid,t.*,c.relkind,format_type(nullif(t.typbasetype, 0), t.typtypmod) as base_type_name, d.description
FROM pg_catalog.pg_type t
LEFT OUTER JOIN pg_catalog.pg_type et ON et.oid=t.typelem 
LEFT OUTER JOIN pg_catalog.pg_class c ON c.oid=t.typrelid
LEFT OUTER JOIN pg_catalog.pg_description d ON t.oid=d.objoid
WHERE t.typname IS NOT NULL
AND (c.relkind IS NULL OR c.relkind = 'c') AND (et.typcategory IS NULL OR et.typcategory <> 'C');
\o
SELECT q.typname, q.typlen, q.typtype, q.typcategory, q.typelem, q.typarray, q.relkind, q.base_type_name
FROM (SELECT t.*,c.relkind,format_type(nullif(t.typbasetype, 0), t.typtypmod) as base_type_name, d.description
FROM pg_catalog.pg_type t
LEFT OUTER JOIN pg_catalog.pg_type et ON et.oid=t.typelem 
LEFT OUTER JOIN pg_catalog.pg_class c ON c.oid=t.typrelid
LEFT OUTER JOIN pg_catalog.pg_description d ON t.oid=d.objoid
WHERE t.typname IS NOT NULL
AND (c.relkind IS NULL OR c.relkind = 'c') AND (et.typcategory IS NULL OR et.typcategory <> 'C')) q
WHERE q.typname IN ('bool', 'int2', 'int4', 'int8', 'numeric', 'text', 'varchar', 'timestamp', 'timestamptz',
                    'jsonb', '_text')
ORDER BY q.typname;

-- [D7] model/PostgreSchema.java TableCache.prepareLookupStatement (tables and views of a schema)
\o /dev/null
SELECT c.oid,c.*,d.description,pg_catalog.pg_get_expr(c.relpartbound, c.oid) as partition_expr,  pg_catalog.pg_get_partkeydef(c.oid) as partition_key 
FROM pg_catalog.pg_class c
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_class'::regclass
WHERE c.relnamespace=:ns_oid AND c.relkind not in ('i','I','c');
\o
SELECT q.relname, q.relkind, pg_catalog.pg_get_userbyid(q.relowner) AS owner,
       q.relpersistence, q.relispartition, q.relhassubclass, q.relrowsecurity, q.reloptions, q.relacl,
       q.reltablespace, q.relhasindex, q.relnatts, q.description, q.partition_expr, q.partition_key
FROM (SELECT c.*,d.description,pg_catalog.pg_get_expr(c.relpartbound, c.oid) as partition_expr,  pg_catalog.pg_get_partkeydef(c.oid) as partition_key 
FROM pg_catalog.pg_class c
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_class'::regclass
WHERE c.relnamespace=:ns_oid AND c.relkind not in ('i','I','c')) q
ORDER BY q.relname;

-- [D8] model/PostgreSchema.java TableCache.prepareChildrenStatement (the columns of one table; DBeaver
-- skips attnum <= 0, the system columns)
\o /dev/null
SELECT c.relname,a.*,pg_catalog.pg_get_expr(ad.adbin, ad.adrelid, true) as def_value,dsc.description,dep.objid
FROM pg_catalog.pg_attribute a
INNER JOIN pg_catalog.pg_class c ON (a.attrelid=c.oid)
LEFT OUTER JOIN pg_catalog.pg_attrdef ad ON (a.attrelid=ad.adrelid AND a.attnum = ad.adnum)
LEFT OUTER JOIN pg_catalog.pg_description dsc ON (c.oid=dsc.objoid AND a.attnum = dsc.objsubid)
LEFT OUTER JOIN pg_depend dep on dep.refobjid = a.attrelid AND dep.deptype = 'i' and dep.refobjsubid = a.attnum and dep.classid = dep.refclassid
WHERE NOT a.attisdropped AND c.relkind not in ('i','I','c') AND c.oid=:orders_oid
ORDER BY a.attnum;
\o
SELECT q.relname, q.attname, q.attnum, q.atttypid, q.atttypmod, q.attnotnull, q.atthasdef,
       q.def_value, q.attndims, q.attcollation, q.attidentity, q.attgenerated, q.attislocal, q.attinhcount,
       q.attacl, q.description, q.objid
FROM (SELECT c.relname,a.*,pg_catalog.pg_get_expr(ad.adbin, ad.adrelid, true) as def_value,dsc.description,dep.objid
FROM pg_catalog.pg_attribute a
INNER JOIN pg_catalog.pg_class c ON (a.attrelid=c.oid)
LEFT OUTER JOIN pg_catalog.pg_attrdef ad ON (a.attrelid=ad.adrelid AND a.attnum = ad.adnum)
LEFT OUTER JOIN pg_catalog.pg_description dsc ON (c.oid=dsc.objoid AND a.attnum = dsc.objsubid)
LEFT OUTER JOIN pg_depend dep on dep.refobjid = a.attrelid AND dep.deptype = 'i' and dep.refobjsubid = a.attnum and dep.classid = dep.refclassid
WHERE NOT a.attisdropped AND c.relkind not in ('i','I','c') AND c.oid=:orders_oid
ORDER BY a.attnum) q
WHERE q.attnum > 0 ORDER BY q.attnum;

-- [D9] the same query for all the tables of the schema (`c.relnamespace=?`), as the navigator's
-- schema-wide column load sends it
\o /dev/null
SELECT c.relname,a.*,pg_catalog.pg_get_expr(ad.adbin, ad.adrelid, true) as def_value,dsc.description,dep.objid
FROM pg_catalog.pg_attribute a
INNER JOIN pg_catalog.pg_class c ON (a.attrelid=c.oid)
LEFT OUTER JOIN pg_catalog.pg_attrdef ad ON (a.attrelid=ad.adrelid AND a.attnum = ad.adnum)
LEFT OUTER JOIN pg_catalog.pg_description dsc ON (c.oid=dsc.objoid AND a.attnum = dsc.objsubid)
LEFT OUTER JOIN pg_depend dep on dep.refobjid = a.attrelid AND dep.deptype = 'i' and dep.refobjsubid = a.attnum and dep.classid = dep.refclassid
WHERE NOT a.attisdropped AND c.relkind not in ('i','I','c') AND c.relnamespace=:ns_oid
ORDER BY a.attnum;
\o
SELECT q.relname, q.attname, q.attnum, q.atttypid, q.atttypmod, q.attnotnull, q.def_value, q.attndims
FROM (SELECT c.relname,a.*,pg_catalog.pg_get_expr(ad.adbin, ad.adrelid, true) as def_value,dsc.description,dep.objid
FROM pg_catalog.pg_attribute a
INNER JOIN pg_catalog.pg_class c ON (a.attrelid=c.oid)
LEFT OUTER JOIN pg_catalog.pg_attrdef ad ON (a.attrelid=ad.adrelid AND a.attnum = ad.adnum)
LEFT OUTER JOIN pg_catalog.pg_description dsc ON (c.oid=dsc.objoid AND a.attnum = dsc.objsubid)
LEFT OUTER JOIN pg_depend dep on dep.refobjid = a.attrelid AND dep.deptype = 'i' and dep.refobjsubid = a.attnum and dep.classid = dep.refclassid
WHERE NOT a.attisdropped AND c.relkind not in ('i','I','c') AND c.relnamespace=:ns_oid
ORDER BY a.attnum) q
WHERE q.attnum > 0 ORDER BY q.relname, q.attnum;

-- [D10] model/PostgreSchema.java ConstraintCache.prepareObjectsStatement (PK/FK/unique/check constraints
-- of the schema)
\o /dev/null
SELECT c.oid,c.*,t.relname as tabrelname,rt.relnamespace as refnamespace,d.description, case when c.contype='c' then "substring"(pg_get_constraintdef(c.oid), 7) else null end consrc_copy
FROM pg_catalog.pg_constraint c
INNER JOIN pg_catalog.pg_class t ON t.oid=c.conrelid
LEFT OUTER JOIN pg_catalog.pg_class rt ON rt.oid=c.confrelid
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_constraint'::regclass
WHERE t.relnamespace=:ns_oid
ORDER BY c.oid;
\o
SELECT q.tabrelname, q.conname, q.contype, q.conkey, q.confkey, q.confrelid, q.refnamespace, q.condeferrable,
       q.condeferred, q.conislocal, q.conindid <> 0 AS has_index, q.consrc_copy, q.description
FROM (SELECT c.*,t.relname as tabrelname,rt.relnamespace as refnamespace,d.description, case when c.contype='c' then "substring"(pg_get_constraintdef(c.oid), 7) else null end consrc_copy
FROM pg_catalog.pg_constraint c
INNER JOIN pg_catalog.pg_class t ON t.oid=c.conrelid
LEFT OUTER JOIN pg_catalog.pg_class rt ON rt.oid=c.confrelid
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_constraint'::regclass
WHERE t.relnamespace=:ns_oid
ORDER BY c.oid) q
ORDER BY q.tabrelname, q.conname;

-- [D11] model/PostgreSchema.java IndexCache.prepareObjectsStatement (indexes of the schema, with sizes)
\o /dev/null
SELECT i.*,i.indkey as keys,c.relname,c.relnamespace,c.relam,c.reltablespace,tc.relname as tabrelname,dsc.description,pg_catalog.pg_get_expr(i.indpred, i.indrelid) as pred_expr,pg_catalog.pg_get_expr(i.indexprs, i.indrelid, true) as expr,pg_catalog.pg_relation_size(i.indexrelid) as index_rel_size,pg_catalog.pg_stat_get_numscans(i.indexrelid) as index_num_scans
FROM pg_catalog.pg_index i
INNER JOIN pg_catalog.pg_class c ON c.oid=i.indexrelid
INNER JOIN pg_catalog.pg_class tc ON tc.oid=i.indrelid
LEFT OUTER JOIN pg_catalog.pg_description dsc ON i.indexrelid=dsc.objoid
WHERE  c.relnamespace=:ns_oid ORDER BY c.relname;
\o
SELECT q.relname, q.tabrelname, q.keys, q.indnatts, q.indisunique, q.indisprimary, q.indisexclusion, q.indimmediate,
       q.indisclustered, q.indisvalid, q.indisready, q.indcheckxmin, q.indclass, q.indoption, q.relam,
       q.reltablespace, q.pred_expr, q.expr, q.description,
       q.index_rel_size IS NOT NULL AS has_size, q.index_num_scans IS NOT NULL AS has_scans
FROM (SELECT i.*,i.indkey as keys,c.relname,c.relnamespace,c.relam,c.reltablespace,tc.relname as tabrelname,dsc.description,pg_catalog.pg_get_expr(i.indpred, i.indrelid) as pred_expr,pg_catalog.pg_get_expr(i.indexprs, i.indrelid, true) as expr,pg_catalog.pg_relation_size(i.indexrelid) as index_rel_size,pg_catalog.pg_stat_get_numscans(i.indexrelid) as index_num_scans
FROM pg_catalog.pg_index i
INNER JOIN pg_catalog.pg_class c ON c.oid=i.indexrelid
INNER JOIN pg_catalog.pg_class tc ON tc.oid=i.indrelid
LEFT OUTER JOIN pg_catalog.pg_description dsc ON i.indexrelid=dsc.objoid
WHERE  c.relnamespace=:ns_oid ORDER BY c.relname) q
ORDER BY q.relname;

-- [D12] model/PostgreSchema.java IndexCache.fetchObjectRow: the text of each index column
select pg_catalog.pg_get_indexdef(:t_pkey_oid, 1, true);

-- [D13] model/PostgreTableReal.java readTableStatistics and PostgreSchema.java collectObjectStatistics
\o /dev/null
select pg_catalog.pg_total_relation_size(:t_oid) as total_rel_size,pg_catalog.pg_relation_size(:t_oid) as rel_size;
select c.oid,pg_catalog.pg_total_relation_size(c.oid) as total_rel_size,pg_catalog.pg_relation_size(c.oid) as rel_size
FROM pg_class c
WHERE c.relnamespace=:ns_oid;
\o
SELECT q.total_rel_size >= 0 AS total_ok, q.rel_size >= 0 AS rel_ok
FROM (select pg_catalog.pg_total_relation_size(:t_oid) as total_rel_size,pg_catalog.pg_relation_size(:t_oid) as rel_size) q;
SELECT count(*) AS relations, count(q.total_rel_size) AS with_total_size, count(q.rel_size) AS with_size
FROM (select c.oid,pg_catalog.pg_total_relation_size(c.oid) as total_rel_size,pg_catalog.pg_relation_size(c.oid) as rel_size
FROM pg_class c
WHERE c.relnamespace=:ns_oid) q;

-- [D14] model/PostgreTable.java: references to the table, parents (inheritance), triggers
-- (PostgreTableReal.TriggerCache), rules (PostgreTableReal.RuleCache), policies; PostgreSchema.java
-- inheritance of the schema's tables and procedures (ProceduresCache)
SELECT DISTINCT connamespace FROM pg_catalog.pg_constraint WHERE confrelid=:t_oid;
SELECT i.*,c.relnamespace FROM pg_catalog.pg_inherits i,pg_catalog.pg_class c WHERE i.inhrelid=:orders_oid AND c.oid=i.inhparent ORDER BY i.inhseqno;
SELECT i.inhrelid relid, pc.relnamespace parent_ns, pc.oid parent_oid, i.inhseqno
FROM pg_catalog.pg_inherits i, pg_class rc, pg_class pc
WHERE rc.oid=i.inhrelid AND rc.relnamespace=:ns_oid AND pc.oid=i.inhparent;
SELECT x.oid,x.*,p.pronamespace as func_schema_id,d.description
FROM pg_catalog.pg_trigger x
LEFT OUTER JOIN pg_catalog.pg_proc p ON p.oid=x.tgfoid 
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=x.oid AND d.objsubid=0 
WHERE x.tgrelid = :t_oid AND NOT x.tgisinternal;
SELECT r.oid,r.*, pg_get_ruledef(r.oid) AS definition
FROM pg_rewrite r
WHERE r.ev_class=:t_oid AND r.rulename <> '_RETURN'::name;
select * from pg_catalog.pg_policies where schemaname='@NS@' and tablename='t';
SELECT p.oid as poid,p.*,pg_catalog.pg_get_expr(p.proargdefaults, 0) as arg_defaults,d.description
FROM pg_catalog.pg_proc p
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=p.oid and d.classoid='pg_proc'::regclass  AND d.objsubid = 0
WHERE p.pronamespace=:ns_oid
ORDER BY p.proname;

-- [D15] model/PostgreDatabase.java RoleCache / AccessMethodCache (pg_am) / EncodingCache
\o /dev/null
SELECT a.oid,a.*,pd.description FROM pg_catalog.pg_roles a 
left join pg_catalog.pg_shdescription pd on a.oid = pd.objoid
ORDER BY a.rolname;
SELECT am.oid,am.* FROM pg_catalog.pg_am am 
ORDER BY am.oid;
\o
SELECT q.rolname, q.rolsuper, q.rolcanlogin, q.rolinherit, q.description
FROM (SELECT a.*,pd.description FROM pg_catalog.pg_roles a 
left join pg_catalog.pg_shdescription pd on a.oid = pd.objoid
ORDER BY a.rolname) q WHERE q.rolname = current_user;
SELECT q.amname, q.amtype
FROM (SELECT am.* FROM pg_catalog.pg_am am 
ORDER BY am.oid) q WHERE q.amname IN ('btree', 'heap') ORDER BY q.amname;
SELECT q.encname
FROM (SELECT c.contoencoding as encid,pg_catalog.pg_encoding_to_char(c.contoencoding) as encname
FROM pg_catalog.pg_conversion c
GROUP BY c.contoencoding
ORDER BY 2
) q WHERE q.encname = 'UTF8';

-------------------------------------------------------------------------------------------------------
-- Metabase
-------------------------------------------------------------------------------------------------------

-- [M1] connect (pgjdbc / c3p0 / clojure.java.jdbc, as Metabase opens a pooled connection), then
-- driver/db-default-timezone (`show timezone;`) and sql-jdbc.execute/set-timezone-sql
SET application_name = 'Metabase v0.62.1.5 [00000000-0000-0000-0000-000000000000]';
SELECT 1;
SHOW TRANSACTION ISOLATION LEVEL;
\o /dev/null
select current_catalog;
\o
select current_catalog = :'db' AS is_connection_db;
SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ UNCOMMITTED;
SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED;
show timezone;
SET SESSION TIMEZONE TO 'UTC';

-- [M2] sync/describe_database.clj all-schemas: pgjdbc DatabaseMetaData.getSchemas()
\o /dev/null
SELECT nspname AS "TABLE_SCHEM", current_database() AS "TABLE_CATALOG" FROM pg_catalog.pg_namespace  WHERE nspname <> 'pg_toast' AND (nspname !~ '^pg_temp_'  OR nspname = (pg_catalog.current_schemas(true))[1]) AND (nspname !~ '^pg_toast_temp_'  OR nspname = replace((pg_catalog.current_schemas(true))[1], 'pg_temp_', 'pg_toast_temp_'))  ORDER BY "TABLE_SCHEM";
\o
SELECT q."TABLE_SCHEM", q."TABLE_CATALOG" = :'db' AS is_connection_db
FROM (SELECT nspname AS "TABLE_SCHEM", current_database() AS "TABLE_CATALOG" FROM pg_catalog.pg_namespace  WHERE nspname <> 'pg_toast' AND (nspname !~ '^pg_temp_'  OR nspname = (pg_catalog.current_schemas(true))[1]) AND (nspname !~ '^pg_toast_temp_'  OR nspname = replace((pg_catalog.current_schemas(true))[1], 'pg_temp_', 'pg_toast_temp_'))  ORDER BY "TABLE_SCHEM") q
WHERE q."TABLE_SCHEM" IN ('@NS@', 'public', 'pg_catalog', 'information_schema') ORDER BY q."TABLE_SCHEM" = '@NS@', 1;

-- [M3] postgres.clj current-user-table-privileges (the :table-privileges feature; which tables sync)
SELECT q.* FROM (with table_privileges as (
 select
   NULL as role,
   t.schemaname as schema,
   t.objectname as table,
   pg_catalog.has_any_column_privilege(current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'update') as update,
   pg_catalog.has_any_column_privilege(current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'select') as select,
   pg_catalog.has_any_column_privilege(current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'insert') as insert,
   pg_catalog.has_table_privilege(     current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'delete') as delete
 from (
   select schemaname, tablename as objectname from pg_catalog.pg_tables
   union
   select schemaname, viewname as objectname from pg_catalog.pg_views
   union
   select schemaname, matviewname as objectname from pg_catalog.pg_matviews
 ) t
 where t.schemaname !~ '^pg_'
   and t.schemaname <> 'information_schema'
   and pg_catalog.has_schema_privilege(current_user, t.schemaname, 'usage')
)
select t.*
from table_privileges t) q WHERE q.schema = '@NS@' ORDER BY q.table;

-- [M4] postgres.clj get-tables-sql (describe-database*: the tables of the synced schemas)
\o /dev/null
SELECT "n"."nspname" AS "schema", "c"."relname" AS "name", CASE "c"."relkind" WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'PARTITIONED TABLE' WHEN 'v' THEN 'VIEW' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE NULL END AS "type", "d"."description" AS "description", NULLIF("stat"."n_live_tup", 0) AS "estimated_row_count" FROM "pg_catalog"."pg_class" AS "c" INNER JOIN "pg_catalog"."pg_namespace" AS "n" ON "c"."relnamespace" = "n"."oid" LEFT JOIN "pg_catalog"."pg_description" AS "d" ON ("c"."oid" = "d"."objoid") AND ("d"."objsubid" = 0) AND ("d"."classoid" = 'pg_class'::regclass) LEFT JOIN "pg_stat_user_tables" AS "stat" ON ("n"."nspname" = "stat"."schemaname") AND ("c"."relname" = "stat"."relname") WHERE ("c"."relnamespace" = "n"."oid") AND ("n"."nspname" !~ '^pg_') AND ("n"."nspname" <> 'information_schema') AND c.relkind in ('r', 'p', 'v', 'f', 'm') AND ("n"."nspname" IN ('@NS@')) ORDER BY "type" ASC, "schema" ASC, "name" ASC;
\o
SELECT q."schema", q."name", q."type", q."description"
FROM (SELECT "n"."nspname" AS "schema", "c"."relname" AS "name", CASE "c"."relkind" WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'PARTITIONED TABLE' WHEN 'v' THEN 'VIEW' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE NULL END AS "type", "d"."description" AS "description", NULLIF("stat"."n_live_tup", 0) AS "estimated_row_count" FROM "pg_catalog"."pg_class" AS "c" INNER JOIN "pg_catalog"."pg_namespace" AS "n" ON "c"."relnamespace" = "n"."oid" LEFT JOIN "pg_catalog"."pg_description" AS "d" ON ("c"."oid" = "d"."objoid") AND ("d"."objsubid" = 0) AND ("d"."classoid" = 'pg_class'::regclass) LEFT JOIN "pg_stat_user_tables" AS "stat" ON ("n"."nspname" = "stat"."schemaname") AND ("c"."relname" = "stat"."relname") WHERE ("c"."relnamespace" = "n"."oid") AND ("n"."nspname" !~ '^pg_') AND ("n"."nspname" <> 'information_schema') AND c.relkind in ('r', 'p', 'v', 'f', 'm') AND ("n"."nspname" IN ('@NS@')) ORDER BY "type" ASC, "schema" ASC, "name" ASC) q;

-- [M5] postgres.clj enum-types (describe-fields-pre-process-xf: which columns are enums)
SELECT nspname, typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.oid IN (SELECT DISTINCT enumtypid FROM pg_enum e);

-- [M6] postgres.clj describe-fields-sql (the fields of every synced table: type, position, pk?, comment,
-- required, default, auto-increment, generated, nullable)
SELECT "c"."column_name" AS "name", CASE WHEN "c"."udt_schema" IN ('public', 'pg_catalog') THEN FORMAT('%s', "c"."udt_name") ELSE FORMAT('"%s"."%s"', "c"."udt_schema", "c"."udt_name") END AS "database-type", "c"."ordinal_position" - 1 AS "database-position", "c"."table_schema" AS "table-schema", "c"."table_name" AS "table-name", "pk"."column_name" IS NOT NULL AS "pk?", COL_DESCRIPTION(CAST(CAST(FORMAT('%I.%I', CAST("c"."table_schema" AS TEXT), CAST("c"."table_name" AS TEXT)) AS REGCLASS) AS OID), "c"."ordinal_position") AS "field-comment", (("column_default" IS NULL) OR (LOWER("column_default") = 'null')) AND ("is_nullable" = 'NO') AND NOT ((("column_default" IS NOT NULL) AND ("column_default" LIKE '%nextval(%')) OR ("is_identity" <> 'NO')) AS "database-required", "column_default" AS "database-default", (("column_default" IS NOT NULL) AND ("column_default" LIKE '%nextval(%')) OR ("is_identity" <> 'NO') AS "database-is-auto-increment", "is_generated" = 'ALWAYS' AS "database-is-generated", "is_nullable" = 'YES' AS "database-is-nullable" FROM "information_schema"."columns" AS "c" LEFT JOIN (SELECT "tc"."table_schema", "tc"."table_name", "kc"."column_name" FROM "information_schema"."table_constraints" AS "tc" INNER JOIN "information_schema"."key_column_usage" AS "kc" ON ("tc"."constraint_name" = "kc"."constraint_name") AND ("tc"."table_schema" = "kc"."table_schema") AND ("tc"."table_name" = "kc"."table_name") WHERE "tc"."constraint_type" = 'PRIMARY KEY') AS "pk" ON ("c"."table_schema" = "pk"."table_schema") AND ("c"."table_name" = "pk"."table_name") AND ("c"."column_name" = "pk"."column_name") WHERE c.table_schema !~ '^information_schema|catalog_history|pg_' AND ("c"."table_schema" IN ('@NS@')) UNION ALL SELECT "pa"."attname" AS "name", CASE WHEN "ptn"."nspname" IN ('public', 'pg_catalog') THEN FORMAT('%s', "pt"."typname") ELSE FORMAT('"%s"."%s"', "ptn"."nspname", "pt"."typname") END AS "database-type", "pa"."attnum" - 1 AS "database-position", "pn"."nspname" AS "table-schema", "pc"."relname" AS "table-name", FALSE AS "pk?", NULL AS "field-comment", FALSE AS "database-required", NULL AS "database-default", FALSE AS "database-is-auto-increment", FALSE AS "database-is-generated", FALSE AS "database-is-nullable" FROM "pg_catalog"."pg_class" AS "pc" INNER JOIN "pg_catalog"."pg_namespace" AS "pn" ON "pn"."oid" = "pc"."relnamespace" INNER JOIN "pg_catalog"."pg_attribute" AS "pa" ON "pa"."attrelid" = "pc"."oid" INNER JOIN "pg_catalog"."pg_type" AS "pt" ON "pt"."oid" = "pa"."atttypid" INNER JOIN "pg_catalog"."pg_namespace" AS "ptn" ON "ptn"."oid" = "pt"."typnamespace" WHERE ("pc"."relkind" = 'm') AND ("pa"."attnum" >= 1) AND ("pn"."nspname" IN ('@NS@')) ORDER BY "table-schema" ASC, "table-name" ASC, "database-position" ASC;

-- [M7] sync/describe_table.clj jdbc-fields-metadata: pgjdbc DatabaseMetaData.getColumns(null, schema, table, null)
\o /dev/null
SELECT * FROM (SELECT current_database() AS current_database, n.nspname,c.relname,a.attname,a.atttypid,a.attnotnull  OR (t.typtype = 'd' AND t.typnotnull) AS attnotnull,a.atttypmod,a.attlen,t.typtypmod,row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum) AS attnum, nullif(a.attidentity, '') as attidentity,nullif(a.attgenerated, '') as attgenerated,pg_catalog.pg_get_expr(def.adbin, def.adrelid) AS adsrc,dsc.description,t.typbasetype,t.typtype  FROM pg_catalog.pg_namespace n  JOIN pg_catalog.pg_class c ON (c.relnamespace = n.oid)  JOIN pg_catalog.pg_attribute a ON (a.attrelid=c.oid)  JOIN pg_catalog.pg_type t ON (a.atttypid = t.oid)  LEFT JOIN pg_catalog.pg_attrdef def ON (a.attrelid=def.adrelid AND a.attnum = def.adnum)  LEFT JOIN pg_catalog.pg_description dsc ON (c.oid=dsc.objoid AND a.attnum = dsc.objsubid)  LEFT JOIN pg_catalog.pg_class dc ON (dc.oid=dsc.classoid AND dc.relname='pg_class')  LEFT JOIN pg_catalog.pg_namespace dn ON (dc.relnamespace=dn.oid AND dn.nspname='pg_catalog')  WHERE c.relkind in ('r','p','v','f','m') and a.attnum > 0 AND NOT a.attisdropped  AND n.nspname LIKE '@NS@' AND c.relname LIKE 'orders') c WHERE true  ORDER BY nspname,c.relname,attnum;
\o
SELECT q.nspname, q.relname, q.attname, q.atttypid, q.attnotnull, q.atttypmod, q.attlen, q.typtypmod, q.attnum,
       q.attidentity, q.attgenerated, q.adsrc, q.description, q.typbasetype, q.typtype
FROM (SELECT * FROM (SELECT current_database() AS current_database, n.nspname,c.relname,a.attname,a.atttypid,a.attnotnull  OR (t.typtype = 'd' AND t.typnotnull) AS attnotnull,a.atttypmod,a.attlen,t.typtypmod,row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum) AS attnum, nullif(a.attidentity, '') as attidentity,nullif(a.attgenerated, '') as attgenerated,pg_catalog.pg_get_expr(def.adbin, def.adrelid) AS adsrc,dsc.description,t.typbasetype,t.typtype  FROM pg_catalog.pg_namespace n  JOIN pg_catalog.pg_class c ON (c.relnamespace = n.oid)  JOIN pg_catalog.pg_attribute a ON (a.attrelid=c.oid)  JOIN pg_catalog.pg_type t ON (a.atttypid = t.oid)  LEFT JOIN pg_catalog.pg_attrdef def ON (a.attrelid=def.adrelid AND a.attnum = def.adnum)  LEFT JOIN pg_catalog.pg_description dsc ON (c.oid=dsc.objoid AND a.attnum = dsc.objsubid)  LEFT JOIN pg_catalog.pg_class dc ON (dc.oid=dsc.classoid AND dc.relname='pg_class')  LEFT JOIN pg_catalog.pg_namespace dn ON (dc.relnamespace=dn.oid AND dn.nspname='pg_catalog')  WHERE c.relkind in ('r','p','v','f','m') and a.attnum > 0 AND NOT a.attisdropped  AND n.nspname LIKE '@NS@' AND c.relname LIKE 'orders') c WHERE true  ORDER BY nspname,c.relname,attnum) q
ORDER BY q.attnum;

-- [M8] sync/describe_table.clj get-table-pks: pgjdbc DatabaseMetaData.getPrimaryKeys(null, schema, table)
\o /dev/null
SELECT        result.TABLE_CAT AS "TABLE_CAT",        result.TABLE_SCHEM AS "TABLE_SCHEM",        result.TABLE_NAME AS "TABLE_NAME",        result.COLUMN_NAME AS "COLUMN_NAME",        result.KEY_SEQ AS "KEY_SEQ",        result.PK_NAME AS "PK_NAME"FROM      (SELECT current_database() AS TABLE_CAT, n.nspname AS TABLE_SCHEM,   ct.relname AS TABLE_NAME, a.attname AS COLUMN_NAME,   (information_schema._pg_expandarray(i.indkey)).n AS KEY_SEQ, ci.relname AS PK_NAME,   information_schema._pg_expandarray(i.indkey) AS KEYS, a.attnum AS A_ATTNUM, i.indnkeyatts as KEY_COUNT FROM pg_catalog.pg_class ct   JOIN pg_catalog.pg_attribute a ON (ct.oid = a.attrelid)   JOIN pg_catalog.pg_namespace n ON (ct.relnamespace = n.oid)   JOIN pg_catalog.pg_index i ON ( a.attrelid = i.indrelid)   JOIN pg_catalog.pg_class ci ON (ci.oid = i.indexrelid) WHERE true  AND n.nspname = '@NS@' AND ct.relname = 'orders' AND i.indisprimary  ) result where  result.A_ATTNUM = (result.KEYS).x AND result.KEY_SEQ <= KEY_COUNT  ORDER BY result.table_name, result.pk_name, result.key_seq;
\o
SELECT q."TABLE_SCHEM", q."TABLE_NAME", q."COLUMN_NAME", q."KEY_SEQ", q."PK_NAME"
FROM (SELECT        result.TABLE_CAT AS "TABLE_CAT",        result.TABLE_SCHEM AS "TABLE_SCHEM",        result.TABLE_NAME AS "TABLE_NAME",        result.COLUMN_NAME AS "COLUMN_NAME",        result.KEY_SEQ AS "KEY_SEQ",        result.PK_NAME AS "PK_NAME"FROM      (SELECT current_database() AS TABLE_CAT, n.nspname AS TABLE_SCHEM,   ct.relname AS TABLE_NAME, a.attname AS COLUMN_NAME,   (information_schema._pg_expandarray(i.indkey)).n AS KEY_SEQ, ci.relname AS PK_NAME,   information_schema._pg_expandarray(i.indkey) AS KEYS, a.attnum AS A_ATTNUM, i.indnkeyatts as KEY_COUNT FROM pg_catalog.pg_class ct   JOIN pg_catalog.pg_attribute a ON (ct.oid = a.attrelid)   JOIN pg_catalog.pg_namespace n ON (ct.relnamespace = n.oid)   JOIN pg_catalog.pg_index i ON ( a.attrelid = i.indrelid)   JOIN pg_catalog.pg_class ci ON (ci.oid = i.indexrelid) WHERE true  AND n.nspname = '@NS@' AND ct.relname = 'orders' AND i.indisprimary  ) result where  result.A_ATTNUM = (result.KEYS).x AND result.KEY_SEQ <= KEY_COUNT  ORDER BY result.table_name, result.pk_name, result.key_seq) q;

-- [M9] postgres.clj describe-fks-sql
SELECT "fk_ns"."nspname" AS "fk-table-schema", "fk_table"."relname" AS "fk-table-name", "fk_column"."attname" AS "fk-column-name", "pk_ns"."nspname" AS "pk-table-schema", "pk_table"."relname" AS "pk-table-name", "pk_column"."attname" AS "pk-column-name" FROM "pg_constraint" AS "c" INNER JOIN "pg_class" AS "fk_table" ON "c"."conrelid" = "fk_table"."oid" INNER JOIN "pg_namespace" AS "fk_ns" ON "c"."connamespace" = "fk_ns"."oid" INNER JOIN "pg_attribute" AS "fk_column" ON "c"."conrelid" = "fk_column"."attrelid" INNER JOIN "pg_class" AS "pk_table" ON "c"."confrelid" = "pk_table"."oid" INNER JOIN "pg_namespace" AS "pk_ns" ON "pk_table"."relnamespace" = "pk_ns"."oid" INNER JOIN "pg_attribute" AS "pk_column" ON "c"."confrelid" = "pk_column"."attrelid" WHERE fk_ns.nspname !~ '^information_schema|catalog_history|pg_' AND ("c"."contype" = 'f'::char) AND ("fk_column"."attnum" = ANY(c.conkey)) AND ("pk_column"."attnum" = ANY(c.confkey)) AND ("fk_ns"."nspname" IN ('@NS@')) ORDER BY "fk-table-schema" ASC, "fk-table-name" ASC;

-- [M10] postgres.clj describe-indexes-sql (rendered from its HoneySQL; index sync is off by default but
-- the driver declares :describe-indexes)
SELECT "tmp"."table-schema", "tmp"."table-name", TRIM(BOTH '"' FROM PG_CATALOG.PG_GET_INDEXDEF("tmp"."ci_oid", "tmp"."pos", FALSE)) AS "field-name" FROM (SELECT "n"."nspname" AS "table-schema", "ct"."relname" AS "table-name", "ci"."oid" AS "ci_oid", (INFORMATION_SCHEMA._PG_EXPANDARRAY("i"."indkey")).N AS "pos" FROM "pg_catalog"."pg_class" AS "ct" INNER JOIN "pg_catalog"."pg_namespace" AS "n" ON "ct"."relnamespace" = "n"."oid" INNER JOIN "pg_catalog"."pg_index" AS "i" ON "ct"."oid" = "i"."indrelid" INNER JOIN "pg_catalog"."pg_class" AS "ci" ON "ci"."oid" = "i"."indexrelid" WHERE (PG_CATALOG.PG_GET_EXPR("i"."indpred", "i"."indrelid") IS NULL) AND n.nspname !~ '^information_schema|catalog_history|pg_' AND ("n"."nspname" IN ('@NS@'))) AS "tmp" WHERE "tmp"."pos" = 1 ORDER BY 1, 2, 3;

-- [M11] sync/describe_database.clj simple-select-probe-query (have-select-privilege?) and
-- table-rows-sample (fingerprinting: text columns cut with SUBSTRING, other columns as they are)
SELECT TRUE AS "_" FROM "@NS@"."orders" WHERE 1 <> 1 LIMIT 0;
-- Metabase
SELECT SUBSTRING("@NS@"."orders"."status", 1, 1234) AS "substring4476", SUBSTRING("@NS@"."orders"."note", 1, 1234) AS "substring4477" FROM "@NS@"."orders" ORDER BY "@NS@"."orders"."id" LIMIT 10000;
-- Metabase
SELECT "@NS@"."orders"."t_id" AS "t_id", "@NS@"."orders"."qty" AS "qty", "@NS@"."orders"."placed" AS "placed" FROM "@NS@"."orders" ORDER BY "@NS@"."orders"."id" LIMIT 10000;

-- [M12] pgjdbc PgResultSetMetaData.fetchFieldMetaData (isNullable / isAutoIncrement of the sampled
-- columns: Metabase reads the sample's ResultSetMetaData), with the table oid as a literal
SELECT c.oid = :orders_oid AS is_orders, a.attnum, a.attname, c.relname, n.nspname, a.attnotnull OR (t.typtype = 'd' AND t.typnotnull), a.attidentity != '' OR pg_catalog.pg_get_expr(d.adbin, d.adrelid) LIKE '%nextval(%' FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON (c.relnamespace = n.oid) JOIN pg_catalog.pg_attribute a ON (c.oid = a.attrelid) JOIN pg_catalog.pg_type t ON (a.atttypid = t.oid) LEFT JOIN pg_catalog.pg_attrdef d ON (d.adrelid = a.attrelid AND d.adnum = a.attnum) JOIN (SELECT :orders_oid AS oid , 2 AS attnum UNION ALL SELECT :orders_oid, 3 UNION ALL SELECT :orders_oid, 6) vals ON (c.oid = vals.oid AND a.attnum = vals.attnum) where c.oid in (:orders_oid) ORDER BY a.attnum;
