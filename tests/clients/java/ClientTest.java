// pgjdbc client-compatibility test (see ../README.md). Exit 0 when every check passes.
// Build: javac -cp /usr/share/java/postgresql.jar -d OUT ClientTest.java
// Run:   java -cp /usr/share/java/postgresql.jar:OUT ClientTest
// Two connections are used: the default one (text results until a statement is used 5 times) and
// one with prepareThreshold=-1 (server-prepared from the first use, binary transfer for the types
// pgjdbc handles in binary: int2/4/8, float4/8, bytea, uuid, date/time/timestamp(tz), arrays...).
import java.math.BigDecimal;
import java.sql.*;
import java.time.*;
import java.util.*;

public class ClientTest {
    static String host = env("PGHOST", "127.0.0.1"), port = env("PGPORT", "5432"), user = env("PGUSER", "root"),
            password = env("PGPASSWORD", ""), db = env("PGDATABASE", "strata"), ns = env("STRATA_NS", "clients_jdbc");
    static String T;
    static final List<String> failed = new ArrayList<>();
    static int passed = 0;
    static Connection admin;

    static String env(String k, String d) { String v = System.getenv(k); return v == null || v.isEmpty() ? d : v; }

    static class CheckFailed extends Exception { CheckFailed(String m) { super(m); } }
    interface Check { void run() throws Exception; }

    static void expect(boolean c, String msg) throws CheckFailed { if (!c) throw new CheckFailed(msg); }

    static boolean check(String name, Check c) {
        try {
            c.run();
            passed++;
            System.out.println("  ok   pgjdbc: " + name);
            return true;
        } catch (CheckFailed e) {
            failed.add(name);
            System.out.println("  FAIL pgjdbc: " + name + ": " + e.getMessage());
        } catch (SQLException e) {
            failed.add(name);
            System.out.println("  FAIL pgjdbc: " + name + ": " + e.getClass().getSimpleName() + ": "
                    + e.getMessage().trim() + " [SQLSTATE " + e.getSQLState() + "]");
        } catch (Exception e) {
            failed.add(name);
            System.out.println("  FAIL pgjdbc: " + name + ": " + e);
        }
        return false;
    }

    static Connection connect(boolean binary) throws SQLException {
        Properties p = new Properties();
        p.setProperty("user", user);
        p.setProperty("password", password);
        p.setProperty("sslmode", "disable");
        p.setProperty("connectTimeout", "10");
        if (binary) p.setProperty("prepareThreshold", "-1");
        return DriverManager.getConnection("jdbc:postgresql://" + host + ":" + port + "/" + db, p);
    }

    static String sqlstateOf(Check c) throws Exception {
        try { c.run(); } catch (SQLException e) { return e.getSQLState() + ": " + e.getMessage().trim(); }
        return "none: no error";
    }
    static void expectSqlstate(String want, Check c) throws Exception {
        String got = sqlstateOf(c);
        expect(got.startsWith(want + ":"), "expected SQLSTATE " + want + ", got " + got);
    }

    static final String[][] COLUMNS = {
        {"id", "BIGINT PRIMARY KEY", "int8"}, {"b", "BOOLEAN", "bool"}, {"i2", "SMALLINT", "int2"},
        {"i4", "INTEGER", "int4"}, {"i8", "BIGINT", "int8"}, {"f4", "REAL", "float4"},
        {"f8", "DOUBLE PRECISION", "float8"}, {"num", "NUMERIC(20,6)", "numeric"}, {"txt", "TEXT", "text"},
        {"vc", "VARCHAR(20)", "varchar"}, {"bin", "BYTEA", "bytea"}, {"d", "DATE", "date"}, {"tm", "TIME", "time"},
        {"ts", "TIMESTAMP", "timestamp"}, {"tstz", "TIMESTAMPTZ", "timestamptz"}, {"u", "UUID", "uuid"},
        {"j", "JSON", "json"}, {"jb", "JSONB", "jsonb"}, {"ai", "INT[]", "_int4"}, {"ai8", "BIGINT[]", "_int8"},
        {"af8", "DOUBLE PRECISION[]", "_float8"}, {"ab", "BOOLEAN[]", "_bool"}, {"at", "TEXT[]", "_text"},
    };
    static final int N = COLUMNS.length;

    static Object[] rowFull() {
        return new Object[] {null, true, (short) 12345, -123456789, 9007199254740993L, 1.5f, 3.141592653589793,
            new BigDecimal("12345678901234.123456"), "héllo wörld ✓", "varchar",
            new byte[] {0, 1, (byte) 0xde, (byte) 0xad, (byte) 0xbe, (byte) 0xef, (byte) 0xff},
            LocalDate.of(2024, 2, 29), LocalTime.of(13, 45, 56, 123456000), LocalDateTime.of(2024, 2, 29, 13, 45, 56, 123456000),
            OffsetDateTime.of(2024, 2, 29, 13, 45, 56, 123456000, ZoneOffset.UTC),
            UUID.fromString("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), "{\"a\": 1, \"b\": [1, 2]}", "{\"k\": \"v\", \"n\": null}",
            new Integer[] {1, 2, null}, new Long[] {9007199254740993L, -1L}, new Double[] {1.5, -2.25},
            new Boolean[] {true, false}, new String[] {"a", "b c", ""}};
    }
    static Object[] rowEdge() {
        return new Object[] {null, false, (short) -32768, 2147483647, Long.MIN_VALUE, -0.25f, 1e300,
            new BigDecimal("-0.000001"), "", "xxxxxxxxxxxxxxxxxxxx", new byte[0],
            LocalDate.of(1970, 1, 1), LocalTime.of(0, 0, 0), LocalDateTime.of(1999, 12, 31, 23, 59, 59, 999999000),
            OffsetDateTime.of(2000, 1, 1, 0, 0, 0, 1000, ZoneOffset.UTC),
            UUID.fromString("00000000-0000-0000-0000-000000000000"), "[]", "{\"nested\": {\"x\": [true, false]}}",
            new Integer[] {}, new Long[] {null}, new Double[] {}, new Boolean[] {null, true},
            new String[] {"x\"y", "back\\slash", "NULL", " sp ", null, "{}", "a,b"}};
    }
    static Object[] row(long id) {
        int k = (int) (id % 10);
        return k == 1 ? rowFull() : k == 3 ? rowEdge() : new Object[N];
    }

    static void bind(Connection c, PreparedStatement ps, int idx, int col, Object v) throws SQLException {
        String t = COLUMNS[col][2];
        if (v == null) {
            int jt;
            switch (t) {
                case "json": case "jsonb": case "uuid": jt = Types.OTHER; break;
                case "bool": jt = Types.BOOLEAN; break; case "int2": jt = Types.SMALLINT; break;
                case "int4": jt = Types.INTEGER; break; case "int8": jt = Types.BIGINT; break;
                case "float4": jt = Types.REAL; break; case "float8": jt = Types.DOUBLE; break;
                case "numeric": jt = Types.NUMERIC; break; case "bytea": jt = Types.BINARY; break;
                case "date": jt = Types.DATE; break; case "time": jt = Types.TIME; break;
                case "timestamp": jt = Types.TIMESTAMP; break; case "timestamptz": jt = Types.TIMESTAMP_WITH_TIMEZONE; break;
                default: jt = t.startsWith("_") ? Types.ARRAY : Types.VARCHAR;
            }
            ps.setNull(idx, jt);
            return;
        }
        switch (t) {
            case "json": case "jsonb": {
                org.postgresql.util.PGobject o = new org.postgresql.util.PGobject();
                o.setType(t);
                o.setValue((String) v);
                ps.setObject(idx, o);
                return;
            }
            case "_int4": ps.setArray(idx, c.createArrayOf("int4", (Object[]) v)); return;
            case "_int8": ps.setArray(idx, c.createArrayOf("int8", (Object[]) v)); return;
            case "_float8": ps.setArray(idx, c.createArrayOf("float8", (Object[]) v)); return;
            case "_bool": ps.setArray(idx, c.createArrayOf("bool", (Object[]) v)); return;
            case "_text": ps.setArray(idx, c.createArrayOf("text", (Object[]) v)); return;
            case "bytea": ps.setBytes(idx, (byte[]) v); return;
            default: ps.setObject(idx, v);
        }
    }

    static Object read(ResultSet rs, int idx, int col) throws SQLException {
        String t = COLUMNS[col][2];
        Object v;
        switch (t) {
            case "date": v = rs.getObject(idx, LocalDate.class); break;
            case "time": v = rs.getObject(idx, LocalTime.class); break;
            case "timestamp": v = rs.getObject(idx, LocalDateTime.class); break;
            case "timestamptz": v = rs.getObject(idx, OffsetDateTime.class); break;
            case "bytea": v = rs.getBytes(idx); break;
            case "json": case "jsonb": v = rs.getString(idx); break;
            case "float4": v = rs.getFloat(idx); break;
            case "int2": v = rs.getShort(idx); break;
            default:
                if (t.startsWith("_")) { Array a = rs.getArray(idx); v = a == null ? null : a.getArray(); }
                else v = rs.getObject(idx);
        }
        return rs.wasNull() ? null : v;
    }

    static String show(Object v) {
        if (v instanceof Object[]) return Arrays.deepToString((Object[]) v);
        if (v instanceof byte[]) return "bytes" + Arrays.toString((byte[]) v);
        return v == null ? "null" : v + " (" + v.getClass().getSimpleName() + ")";
    }
    static boolean same(int col, Object e, Object g) {
        if (e == null || g == null) return e == g;
        if (e instanceof byte[]) return g instanceof byte[] && Arrays.equals((byte[]) e, (byte[]) g);
        if (e instanceof Object[]) return g instanceof Object[] && Arrays.deepEquals((Object[]) e, (Object[]) g);
        if (e instanceof BigDecimal) return g instanceof BigDecimal && ((BigDecimal) e).compareTo((BigDecimal) g) == 0
                && ((BigDecimal) g).scale() == 6;
        if (e instanceof OffsetDateTime) return g instanceof OffsetDateTime && ((OffsetDateTime) e).isEqual((OffsetDateTime) g);
        return e.equals(g);
    }

    static String cols() { StringJoiner j = new StringJoiner(", "); for (String[] c : COLUMNS) j.add(c[0]); return j.toString(); }

    static void insertRows(Connection c, long idBase) throws Exception {
        StringJoiner q = new StringJoiner(", ");
        for (int i = 0; i < N; i++) q.add("?");
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + T + " (" + cols() + ") VALUES (" + q + ")")) {
            for (long id = 1; id <= 3; id++) {
                Object[] r = row(id);
                ps.setLong(1, idBase + id);
                for (int i = 1; i < N; i++) bind(c, ps, i + 1, i, r[i]);
                expect(ps.executeUpdate() == 1, "executeUpdate != 1 for id " + (idBase + id));
            }
        }
    }

    static void selectCompare(Connection c, long[] ids) throws Exception {
        StringJoiner in = new StringJoiner(", ");
        for (long id : ids) in.add(Long.toString(id));
        List<String> bad = new ArrayList<>();
        List<Long> got = new ArrayList<>();
        try (PreparedStatement ps = c.prepareStatement("SELECT " + cols() + " FROM " + T + " WHERE id IN (" + in + ") ORDER BY id");
             ResultSet rs = ps.executeQuery()) {
            while (rs.next()) {
                long id = rs.getLong(1);
                got.add(id);
                Object[] e = row(id);
                for (int i = 1; i < N; i++) {
                    Object g = read(rs, i + 1, i);
                    if (!same(i, e[i], g)) bad.add("id=" + id + " " + COLUMNS[i][0] + ": expected " + show(e[i]) + ", got " + show(g));
                }
            }
        }
        List<Long> want = new ArrayList<>();
        for (long id : ids) want.add(id);
        expect(got.equals(want), "expected ids " + want + ", got " + got);
        expect(bad.isEmpty(), String.join("; ", bad));
    }

    static void perType(Connection c, long base) throws Exception {
        List<String> bad = new ArrayList<>();
        for (int i = 1; i < N; i++) {
            for (int k = 0; k < 2; k++) {
                Object v = (k == 0 ? rowFull() : rowEdge())[i];
                long id = base + i * 10 + k;
                String col = COLUMNS[i][0];
                try {
                    try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + T + " (id, " + col + ") VALUES (?, ?)")) {
                        ps.setLong(1, id);
                        bind(c, ps, 2, i, v);
                        ps.executeUpdate();
                    }
                    try (PreparedStatement ps = c.prepareStatement("SELECT " + col + " FROM " + T + " WHERE id = ?")) {
                        ps.setLong(1, id);
                        try (ResultSet rs = ps.executeQuery()) {
                            if (!rs.next()) { bad.add(col + ": row " + id + " not found after INSERT"); continue; }
                            Object g = read(rs, 1, i);
                            if (!same(i, v, g)) bad.add(col + ": expected " + show(v) + ", got " + show(g));
                        }
                    }
                } catch (SQLException e) {
                    bad.add(col + "=" + show(v) + ": [" + e.getSQLState() + "] " + e.getMessage().trim());
                }
            }
        }
        expect(bad.isEmpty(), bad.size() + " type(s) failed: " + String.join(" | ", bad));
    }

    static List<Long> idsPresent(long... ids) throws SQLException {
        StringJoiner in = new StringJoiner(", ");
        for (long id : ids) in.add(Long.toString(id));
        List<Long> out = new ArrayList<>();
        try (Statement s = admin.createStatement(); ResultSet rs = s.executeQuery("SELECT id FROM " + T + " WHERE id IN (" + in + ") ORDER BY id")) {
            while (rs.next()) out.add(rs.getLong(1));
        }
        return out;
    }

    // Plain rows the transaction/error checks own, so they do not depend on the INSERT checks.
    static void seed(long... ids) throws SQLException {
        for (long id : ids) exec(admin, "INSERT INTO " + T + " (id, txt) VALUES (" + id + ", 'seed') ON CONFLICT (id) DO NOTHING");
    }

    static void exec(Connection c, String sql) throws SQLException { try (Statement s = c.createStatement()) { s.execute(sql); } }
    static void execP(Connection c, String sql, Object... args) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement(sql)) {
            for (int i = 0; i < args.length; i++) ps.setObject(i + 1, args[i]);
            ps.execute();
        }
    }

    public static void main(String[] a) throws Exception {
        if (!ns.matches("[a-z_][a-z0-9_]*")) { System.err.println("STRATA_NS must be a lower-case identifier"); System.exit(2); }
        T = ns + ".types";
        boolean strata = "strata".equals(System.getenv("STRATA_DIALECT"));

        if (!check("connect_scram", () -> {
            admin = connect(false);
            try (Statement s = admin.createStatement(); ResultSet rs = s.executeQuery("SELECT 1 + 1")) {
                expect(rs.next() && rs.getInt(1) == 2, "SELECT 1 + 1 failed");
            }
        })) finish();
        check("login_wrong_password_refused_28P01", () -> {
            String saved = password;
            password = password + "-wrong";
            try { connect(false).close(); throw new CheckFailed("login with a wrong password succeeded"); }
            catch (SQLException e) { expect("28P01".equals(e.getSQLState()), "expected 28P01, got " + e.getSQLState() + ": " + e.getMessage()); }
            finally { password = saved; }
        });
        if (!check("create_namespace_and_table", () -> {
            exec(admin, (strata ? "DROP NAMESPACE IF EXISTS " : "DROP SCHEMA IF EXISTS ") + ns + " CASCADE");
            exec(admin, (strata ? "CREATE NAMESPACE " : "CREATE SCHEMA ") + ns);
            StringJoiner j = new StringJoiner(", ");
            for (String[] c : COLUMNS) j.add(c[0] + " " + c[1]);
            exec(admin, "CREATE TABLE " + T + " (" + j + ")");
        })) finish();

        check("insert_params_default", () -> { try (Connection c = connect(false)) { insertRows(c, 0); } });
        check("insert_params_server_prepared_binary", () -> { try (Connection c = connect(true)) { insertRows(c, 10); } });
        check("select_text_results", () -> { try (Connection c = connect(false)) { selectCompare(c, new long[] {1, 2, 3, 11, 12, 13}); } });
        check("select_binary_results", () -> { try (Connection c = connect(true)) { selectCompare(c, new long[] {1, 2, 3, 11, 12, 13}); } });
        check("per_type_default", () -> { try (Connection c = connect(false)) { perType(c, 4000); } });
        check("per_type_server_prepared_binary", () -> { try (Connection c = connect(true)) { perType(c, 5000); } });

        check("txn_commit", () -> {
            try (Connection c = connect(false)) {
                c.setAutoCommit(false);
                execP(c, "INSERT INTO " + T + " (id, txt) VALUES (?, ?)", 100L, "tx-a");
                execP(c, "INSERT INTO " + T + " (id, txt) VALUES (?, ?)", 101L, "tx-b");
                try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT count(*) FROM " + T + " WHERE id IN (100, 101)")) {
                    rs.next();
                    expect(rs.getLong(1) == 2, "own uncommitted rows: expected 2, got " + rs.getLong(1));
                }
                List<Long> seen = idsPresent(100, 101);
                expect(seen.isEmpty(), "uncommitted rows visible to another session: " + seen);
                c.commit();
            }
            List<Long> seen = idsPresent(100, 101);
            expect(seen.equals(List.of(100L, 101L)), "after COMMIT expected [100, 101], got " + seen);
        });
        check("txn_rollback", () -> {
            seed(200, 201);
            try (Connection c = connect(false)) {
                c.setAutoCommit(false);
                execP(c, "INSERT INTO " + T + " (id, txt) VALUES (?, ?)", 110L, "rb-a");
                exec(c, "UPDATE " + T + " SET txt = 'changed' WHERE id = 200");
                exec(c, "DELETE FROM " + T + " WHERE id = 201");
                c.rollback();
            }
            List<Long> seen = idsPresent(110, 200, 201);
            expect(seen.equals(List.of(200L, 201L)), "after ROLLBACK expected [200, 201] (110 absent, 201 not deleted), got " + seen);
            try (Statement s = admin.createStatement(); ResultSet rs = s.executeQuery("SELECT txt FROM " + T + " WHERE id = 200")) {
                expect(rs.next() && "seed".equals(rs.getString(1)), "after ROLLBACK the UPDATE is visible");
            }
        });
        check("txn_error_aborts_block_25P02", () -> {
            seed(200);
            try (Connection c = connect(false)) {
                c.setAutoCommit(false);
                execP(c, "INSERT INTO " + T + " (id, txt) VALUES (?, ?)", 120L, "ab-a");
                expectSqlstate("23505", () -> execP(c, "INSERT INTO " + T + " (id) VALUES (?)", 200L));
                expectSqlstate("25P02", () -> exec(c, "SELECT 1"));
                c.rollback();
                exec(c, "SELECT 1");
                c.rollback();
            }
            expect(idsPresent(120).isEmpty(), "row of an aborted transaction is visible");
        });
        check("txn_savepoint_free_rollback_after_commit", () -> {
            // setAutoCommit(true) while a transaction is open commits it (JDBC spec).
            try (Connection c = connect(false)) {
                c.setAutoCommit(false);
                execP(c, "INSERT INTO " + T + " (id, txt) VALUES (?, ?)", 130L, "ac");
                c.setAutoCommit(true);
            }
            expect(idsPresent(130).equals(List.of(130L)), "setAutoCommit(true) did not commit the open transaction");
        });
        check("txn_setSavepoint_rollback_to", () -> {
            try (Connection c = connect(false)) {
                c.setAutoCommit(false);
                execP(c, "INSERT INTO " + T + " (id, txt) VALUES (?, ?)", 140L, "kept");
                Savepoint sp = c.setSavepoint("sp1");
                execP(c, "INSERT INTO " + T + " (id, txt) VALUES (?, ?)", 141L, "undone");
                expectSqlstate("23505", () -> execP(c, "INSERT INTO " + T + " (id, txt) VALUES (?, ?)", 140L, "dup"));
                c.rollback(sp);  // clears the aborted state
                execP(c, "INSERT INTO " + T + " (id, txt) VALUES (?, ?)", 142L, "after");
                c.commit();
            }
            expect(idsPresent(140, 141, 142).equals(List.of(140L, 142L)), "after ROLLBACK TO SAVEPOINT: " + idsPresent(140, 141, 142));
        });
        check("setFetchSize_streams_in_portal_chunks", () -> {
            // With autocommit off pgjdbc executes with a row limit and resumes the suspended portal.
            try (Connection c = connect(false)) {
                c.setAutoCommit(false);
                try (PreparedStatement ps = c.prepareStatement("SELECT x FROM generate_series(1, 1000) AS g(x) WHERE x % ? = 0")) {
                    ps.setFetchSize(40);
                    ps.setLong(1, 7L);
                    long n = 0, sum = 0;
                    try (ResultSet rs = ps.executeQuery()) {
                        while (rs.next()) { n++; sum += rs.getLong(1); }
                    }
                    expect(n == 142 && sum == 71071L, "fetched " + n + " rows summing to " + sum);
                }
                c.commit();
            }
        });
        check("error_23505_unique_violation", () -> { seed(200); expectSqlstate("23505", () -> execP(admin, "INSERT INTO " + T + " (id) VALUES (?)", 200L)); });
        check("error_42P01_undefined_table", () -> expectSqlstate("42P01", () -> exec(admin, "SELECT * FROM " + ns + ".no_such_table")));
        check("error_42601_syntax", () -> expectSqlstate("42601", () -> exec(admin, "SELEC 1")));

        check("metadata_getSchemas", () -> {
            List<String> got = new ArrayList<>();
            try (ResultSet rs = admin.getMetaData().getSchemas(null, ns)) {
                while (rs.next()) got.add(rs.getString("TABLE_SCHEM"));
            }
            expect(got.equals(List.of(ns)), "getSchemas(null, \"" + ns + "\") gave " + got);
            boolean pub = false;
            try (ResultSet rs = admin.getMetaData().getSchemas()) { while (rs.next()) pub |= "public".equals(rs.getString(1)); }
            expect(pub, "getSchemas() does not list public");
        });
        check("metadata_getTables", () -> {
            List<String> got = new ArrayList<>();
            try (ResultSet rs = admin.getMetaData().getTables(null, ns, "%", new String[] {"TABLE"})) {
                while (rs.next()) got.add(rs.getString("TABLE_SCHEM") + "." + rs.getString("TABLE_NAME") + ":" + rs.getString("TABLE_TYPE"));
            }
            expect(got.equals(List.of(ns + ".types:TABLE")), "getTables gave " + got);
        });
        check("metadata_getColumns", () -> {
            List<String> got = new ArrayList<>(), want = new ArrayList<>();
            for (int i = 0; i < N; i++) want.add(COLUMNS[i][0] + ":" + COLUMNS[i][2] + ":" + (i + 1) + (i == 0 ? ":NO" : ":YES"));
            try (ResultSet rs = admin.getMetaData().getColumns(null, ns, "types", "%")) {
                while (rs.next()) got.add(rs.getString("COLUMN_NAME") + ":" + rs.getString("TYPE_NAME") + ":"
                        + rs.getInt("ORDINAL_POSITION") + ":" + rs.getString("IS_NULLABLE"));
            }
            expect(got.equals(want), "getColumns gave " + got + ", expected " + want);
            try (ResultSet rs = admin.getMetaData().getColumns(null, ns, "types", "vc")) {
                expect(rs.next(), "getColumns(vc) empty");
                expect(rs.getInt("DATA_TYPE") == Types.VARCHAR && rs.getInt("COLUMN_SIZE") == 20,
                        "vc: DATA_TYPE " + rs.getInt("DATA_TYPE") + " COLUMN_SIZE " + rs.getInt("COLUMN_SIZE") + ", expected Types.VARCHAR (12), size 20");
            }
            try (ResultSet rs = admin.getMetaData().getColumns(null, ns, "types", "num")) {
                expect(rs.next(), "getColumns(num) empty");
                expect(rs.getInt("DATA_TYPE") == Types.NUMERIC && rs.getInt("COLUMN_SIZE") == 20 && rs.getInt("DECIMAL_DIGITS") == 6,
                        "num: DATA_TYPE " + rs.getInt("DATA_TYPE") + " COLUMN_SIZE " + rs.getInt("COLUMN_SIZE") + " DECIMAL_DIGITS " + rs.getInt("DECIMAL_DIGITS"));
            }
        });
        check("metadata_getPrimaryKeys", () -> {
            List<String> got = new ArrayList<>();
            try (ResultSet rs = admin.getMetaData().getPrimaryKeys(null, ns, "types")) {
                while (rs.next()) got.add(rs.getString("TABLE_SCHEM") + "." + rs.getString("TABLE_NAME") + "." + rs.getString("COLUMN_NAME") + ":" + rs.getShort("KEY_SEQ"));
            }
            expect(got.equals(List.of(ns + ".types.id:1")), "getPrimaryKeys gave " + got);
        });
        check("resultset_metadata", () -> {
            try (Statement s = admin.createStatement(); ResultSet rs = s.executeQuery("SELECT id, vc, num FROM " + T + " WHERE id = 1")) {
                ResultSetMetaData md = rs.getMetaData();
                String got = md.getColumnTypeName(1) + "," + md.getColumnTypeName(2) + "," + md.getColumnTypeName(3);
                expect(got.equals("int8,varchar,numeric"), "getColumnTypeName gave " + got);
                expect(md.getTableName(1).equals("types"), "getTableName(1) gave '" + md.getTableName(1) + "'");
            }
        });
        finish();
    }

    static void finish() {
        try { if (admin != null) admin.close(); } catch (SQLException ignored) { }
        System.out.println("pgjdbc: " + passed + " passed, " + failed.size() + " failed (of " + (passed + failed.size()) + ")");
        if (!failed.isEmpty()) { System.out.println("pgjdbc: failed checks: " + String.join(", ", failed)); System.exit(1); }
        System.exit(0);
    }
}
