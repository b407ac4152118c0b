#!/usr/bin/python3
"""Raw HTTP/2 client for hostile-input tests (python3-h2, Debian).

usage: h2raw.py HOST PORT SPEC_JSON
SPEC: {"streams": [{"headers": [[name, value], ...], "data": ["..."], "end": true, "rst": code?}], "wait": seconds}
("rst": a RST_STREAM with that code right after the stream's frames, so a body can be cut without END_STREAM.)
Headers go out unvalidated and unnormalised (so malformed requests can be sent).
Prints one JSON object: {"streams": {id: {"status": int|null, "body": int, "reset": code|null, "ended": bool}},
"goaway": code|null, "closed": bool}
"""
import json
import socket
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.settings


def main():
    host, port, spec = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    cfg = h2.config.H2Configuration(
        client_side=True,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
        validate_inbound_headers=False,
        header_encoding='utf-8',
    )
    conn = h2.connection.H2Connection(config=cfg)
    conn.local_settings = h2.settings.Settings(client=True, initial_values={h2.settings.SettingCodes.MAX_FRAME_SIZE: 16384})
    s = socket.create_connection((host, port))
    s.settimeout(0.2)
    conn.initiate_connection()
    s.sendall(conn.data_to_send())
    out = {"streams": {}, "goaway": None, "closed": False}
    sid = 1
    for st in spec["streams"]:
        data = st.get("data", [])
        end = st.get("end", True)
        conn.send_headers(sid, [tuple(h) for h in st["headers"]], end_stream=end and not data)
        for i, d in enumerate(data):
            b = d.encode('latin1')
            last = end and i == len(data) - 1
            conn.send_data(sid, b, end_stream=last)
        if "rst" in st:
            conn.reset_stream(sid, error_code=st["rst"])
        out["streams"][str(sid)] = {"status": None, "body": 0, "reset": None, "ended": False}
        sid += 2
    s.sendall(conn.data_to_send())
    deadline = time.time() + spec.get("wait", 3)
    while time.time() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            if all(v["ended"] or v["reset"] is not None for v in out["streams"].values()):
                break
            continue
        except OSError:
            out["closed"] = True
            break
        if not chunk:
            out["closed"] = True
            break
        try:
            events = conn.receive_data(chunk)
        except Exception as e:  # a protocol error on our side of the parse
            out["error"] = repr(e)
            break
        for ev in events:
            k = str(getattr(ev, "stream_id", 0))
            if isinstance(ev, h2.events.ResponseReceived):
                for n, v in ev.headers:
                    if n in (b':status', ':status'):
                        out["streams"][k]["status"] = int(v)
            elif isinstance(ev, h2.events.DataReceived):
                out["streams"][k]["body"] += len(ev.data)
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                out["streams"][k]["ended"] = True
            elif isinstance(ev, h2.events.StreamReset):
                out["streams"][k]["reset"] = int(ev.error_code)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                out["goaway"] = int(ev.error_code)
        pending = conn.data_to_send()
        if pending:
            try:
                s.sendall(pending)
            except OSError:
                out["closed"] = True
                break
    s.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
