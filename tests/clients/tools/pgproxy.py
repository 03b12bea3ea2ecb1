#!/usr/bin/env python3
"""A logging proxy for the Postgres wire protocol (plaintext only; refuses SSL so clients fall back).

    python3 tools/pgproxy.py LISTEN_PORT TARGET_HOST TARGET_PORT [LOGFILE]

Logs, one line each, what clients send (Query, Parse with parameter type OIDs, Bind with parameter
and result formats, Describe, Execute, Sync, CopyData sizes, ...) and what the server answers with
ErrorResponse (SQLSTATE and message), CommandComplete and RowDescription. Useful to see the exact SQL
and protocol a driver uses against Strata. Stop it with Ctrl-C / kill.
"""
import asyncio
import struct
import sys
import time

LOG = sys.stdout


def log(conn_id, direction, text):
    LOG.write(f"{time.strftime('%H:%M:%S')} c{conn_id} {direction} {text}\n")
    LOG.flush()


def cstr(buf, pos):
    end = buf.index(b"\0", pos)
    return buf[pos:end].decode("utf-8", "replace"), end + 1


def describe_frontend(t, body):
    if t == "Q":
        return "Query " + cstr(body, 0)[0]
    if t == "P":
        name, p = cstr(body, 0)
        q, p = cstr(body, p)
        (n,) = struct.unpack_from("!h", body, p)
        oids = list(struct.unpack_from(f"!{n}I", body, p + 2))
        return f"Parse name={name!r} param_oids={oids} sql={q}"
    if t == "B":
        portal, p = cstr(body, 0)
        stmt, p = cstr(body, p)
        (nf,) = struct.unpack_from("!h", body, p)
        fmts = list(struct.unpack_from(f"!{nf}h", body, p + 2))
        p += 2 + 2 * nf
        (np,) = struct.unpack_from("!h", body, p)
        p += 2
        vals = []
        for _ in range(np):
            (ln,) = struct.unpack_from("!i", body, p)
            p += 4
            if ln < 0:
                vals.append("NULL")
            else:
                v = body[p:p + ln]
                p += ln
                vals.append(repr(v[:40]) + ("..." if ln > 40 else ""))
        (nr,) = struct.unpack_from("!h", body, p)
        rfmts = list(struct.unpack_from(f"!{nr}h", body, p + 2))
        return f"Bind stmt={stmt!r} param_formats={fmts} result_formats={rfmts} values=[{', '.join(vals)}]"
    if t == "D":
        return f"Describe {chr(body[0])} {cstr(body, 1)[0]!r}"
    if t == "E":
        return f"Execute portal={cstr(body, 0)[0]!r} max_rows={struct.unpack_from('!i', body, len(body) - 4)[0]}"
    if t == "C":
        return f"Close {chr(body[0])} {cstr(body, 1)[0]!r}"
    if t == "d":
        return f"CopyData {len(body)} bytes {body[:60]!r}"
    names = {"S": "Sync", "H": "Flush", "X": "Terminate", "c": "CopyDone", "f": "CopyFail", "p": "Password/SASL"}
    return names.get(t, f"msg {t!r}") + (f" ({len(body)} bytes)" if body else "")


def describe_backend(t, body):
    if t in "EN":
        fields, p = {}, 0
        while p < len(body) and body[p] != 0:
            k = chr(body[p])
            v, p = cstr(body, p + 1)
            fields[k] = v
        kind = "ErrorResponse" if t == "E" else "Notice"
        return f"{kind} {fields.get('C')} {fields.get('M')}" + (f" (at {fields['P']})" if "P" in fields else "")
    if t == "C":
        return "CommandComplete " + cstr(body, 0)[0]
    if t == "T":
        (n,) = struct.unpack_from("!h", body, 0)
        p, cols = 2, []
        for _ in range(n):
            name, p = cstr(body, p)
            _tbl, _att, oid, _sz, _mod, fmt = struct.unpack_from("!IhIhih", body, p)
            p += 18
            cols.append(f"{name}:{oid}{'b' if fmt else ''}")
        return "RowDescription " + " ".join(cols)
    if t == "G" or t == "H":
        return ("CopyInResponse" if t == "G" else "CopyOutResponse") + f" format={body[0]}"
    if t == "t":
        (n,) = struct.unpack_from("!h", body, 0)
        return f"ParameterDescription {list(struct.unpack_from(f'!{n}I', body, 2))}"
    if t == "Z":
        return f"ReadyForQuery {chr(body[0])}"
    return None


async def pump(reader, writer, conn_id, frontend, state):
    buf = b""
    startup = frontend
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            if not frontend and state.get("ssl_reply_pending"):
                state["ssl_reply_pending"] = False
                writer.write(chunk[:1])
                chunk = chunk[1:]
            buf += chunk
            while True:
                if startup:
                    if len(buf) < 4:
                        break
                    (ln,) = struct.unpack_from("!i", buf, 0)
                    if len(buf) < ln:
                        break
                    msg, buf = buf[:ln], buf[ln:]
                    (code,) = struct.unpack_from("!i", msg, 4)
                    if code in (80877103, 80877104):  # SSLRequest / GSSENCRequest: answer 'N' ourselves
                        state["client_writer"].write(b"N")
                        continue
                    startup = False
                    params = msg[8:].split(b"\0")
                    log(conn_id, ">", "Startup " + " ".join(
                        f"{params[i].decode()}={params[i + 1].decode()}" for i in range(0, len(params) - 1, 2) if params[i]))
                    writer.write(msg)
                    continue
                if len(buf) < 5:
                    break
                t = chr(buf[0])
                (ln,) = struct.unpack_from("!i", buf, 1)
                if len(buf) < ln + 1:
                    break
                msg, buf = buf[:ln + 1], buf[ln + 1:]
                body = msg[5:]
                try:
                    text = describe_frontend(t, body) if frontend else describe_backend(t, body)
                except Exception as e:  # never let logging break the stream
                    text = f"msg {t!r} (undecoded: {e})"
                if text and not (frontend and t == "d" and state.get("quiet_copy")):
                    log(conn_id, ">" if frontend else "<", text)
                writer.write(msg)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


COUNTER = [0]


async def handle(client_reader, client_writer, host, port):
    COUNTER[0] += 1
    cid = COUNTER[0]
    server_reader, server_writer = await asyncio.open_connection(host, port)
    state = {"client_writer": client_writer}
    await asyncio.gather(
        pump(client_reader, server_writer, cid, True, state),
        pump(server_reader, client_writer, cid, False, state),
    )


async def main():
    global LOG
    listen, host, port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    if len(sys.argv) > 4:
        LOG = open(sys.argv[4], "a")
    server = await asyncio.start_server(lambda r, w: handle(r, w, host, port), "127.0.0.1", listen)
    print(f"pgproxy listening on 127.0.0.1:{listen} -> {host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
