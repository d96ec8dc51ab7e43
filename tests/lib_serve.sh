# lib_serve.sh - shared by the tests of `vkmoe serve` (tests/cli_serve.sh, cli_openai.sh), sourced
# after lib_cli.sh. Named so that it does not match tests/CMakeLists.txt's cli_*.sh glob.
#   serve_setup NAME        cli_tmpdir NAME, TINY = the tiny fixture, servers killed on exit
#   serve_need TOOL...      exit 77 (skipped) naming the first TOOL not installed
#   start_server LOG ARGS   `vkmoe serve -m $TINY --port 0 ARGS` in the background: SPID, PORT
#   serve_load C K S        C clients x K chat requests $CHAT (whole and streamed, alternating)
#                           against $BASE: $TMP/load_C_K.{json,sse}, codes in $TMP/load_C.codes
#   J MODE FILE ARGS        JSON checks in python3 ($TMP/j.py; see its modes below)
# shellcheck disable=SC2034 # used by the sourcing scripts

serve_setup() {
    cli_tmpdir "$1"
    TINY=$FIX/tiny-v3-f32.gguf
    SERVERS=()
    trap 'for p in "${SERVERS[@]}"; do kill -KILL "$p" 2>/dev/null; done; rm -rf "$TMP"' EXIT
    write_jpy
}

serve_need() {
    local tool
    for tool in "$@"; do
        if ! command -v "$tool" >/dev/null; then
            echo "SKIP: $tool is not installed"
            exit 77
        fi
    done
}

# start_server LOG ARGS...: starts `vkmoe serve --port 0 ARGS` in the background; sets SPID and
# PORT (from the "listening on" line), then waits for /health to say 200. False on failure.
start_server() {
    local log=$1 i
    shift
    : >"$log"
    "$VKMOE" serve -m "$TINY" --port 0 "$@" >"$log" 2>&1 &
    SPID=$!
    SERVERS+=("$SPID")
    PORT=
    for ((i = 0; i < 300; i++)); do
        PORT=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$log" | head -1)
        [ -n "$PORT" ] && break
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$PORT" ] || { echo "server did not start:"; cat "$log"; return 1; }
    for ((i = 0; i < 600; i++)); do
        [ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/health")" = 200 ] &&
            return 0
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.1
    done
    echo "server not healthy:"
    cat "$log"
    return 1
}

# serve_load CLIENTS REQUESTS SECONDS: CLIENTS background loops of REQUESTS requests each, every
# loop waited for with a bound of SECONDS (cli_wait)
serve_load() {
    local c k pids=()
    for ((c = 0; c < $1; c++)); do
        (
            for ((k = 0; k < $2; k++)); do
                if [ $(((c + k) % 2)) = 0 ]; then
                    curl -s -m 120 -o "$TMP/load_${c}_${k}.json" -w '%{http_code}\n' "$BASE/v1/chat/completions" -d "$CHAT}"
                else
                    curl -s -m 120 -N -o "$TMP/load_${c}_${k}.sse" -w '%{http_code}\n' "$BASE/v1/chat/completions" -d "$CHAT,\"stream\":true}"
                fi
            done
        ) >"$TMP/load_$c.codes" 2>&1 &
        pids[c]=$!
    done
    for ((c = 0; c < $1; c++)); do cli_wait "${pids[c]}" "$3"; done
}

write_jpy() {
# Python checks: j.py MODE FILE [ARGS]
cat >"$TMP/j.py" <<'EOF'
import json, sys
mode, path = sys.argv[1], sys.argv[2]
raw = open(path, "rb").read()
def clean(b):  # what the server does to model bytes: invalid UTF-8 and NUL -> U+FFFD
    return b.decode("utf-8", "replace").replace("\0", "\ufffd")
if mode == "error":  # {"error": {"message": str, "type": str, "param": str|null, "code": ...}}
    e = json.loads(raw)["error"]
    assert isinstance(e["message"], str) and e["message"] and isinstance(e["type"], str), e
    assert "param" in e and "code" in e, e
    if len(sys.argv) > 3: assert e["param"] == sys.argv[3], (e["param"], sys.argv[3])
elif mode == "get":  # print a field: a.b.0.c (a list of numbers: space-separated)
    v = json.loads(raw)
    for k in sys.argv[3].split("."):
        v = v[int(k)] if isinstance(v, list) else v[k]
    sys.stdout.write(v if isinstance(v, str) else " ".join(map(str, v)) if isinstance(v, list) else json.dumps(v))
elif mode == "same":  # the JSON field equals the bytes of a file (cleaned)
    v = json.loads(raw)
    for k in sys.argv[3].split("."):
        v = v[int(k)] if isinstance(v, list) else v[k]
    want = clean(open(sys.argv[4], "rb").read())
    if v != want:
        print("got  %r\nwant %r" % (v, want)); sys.exit(1)
elif mode == "sse":  # SSE framing; the concatenated deltas equal a whole answer's field
    kind, whole, field = sys.argv[3], sys.argv[4], sys.argv[5]
    text = raw.decode("utf-8")
    assert text.endswith("data: [DONE]\n\n"), text[-200:]
    events = text.split("\n\n")
    assert events[-1] == "", events[-1]
    events = events[:-1]
    for e in events: assert e.startswith("data: ") and "\n" not in e, e
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1, ids
    out, finish, usage = "", None, None
    for i, c in enumerate(chunks):
        if c.get("usage"): usage = c["usage"]; assert c["choices"] == []; continue
        ch = c["choices"][0]
        if kind == "chat":
            assert c["object"] == "chat.completion.chunk"
            if i == 0: assert ch["delta"].get("role") == "assistant", ch
            out += ch["delta"].get("content", "") or ""
        else:
            assert c["object"] == "text_completion"
            out += ch["text"]
        if ch["finish_reason"]: finish = ch["finish_reason"]
    w = json.load(open(whole))
    want = w["choices"][0]["message"]["content"] if kind == "chat" else w["choices"][0]["text"]
    assert out == want, (out, want)
    assert finish == w["choices"][0]["finish_reason"], (finish, w["choices"][0]["finish_reason"])
    if field == "usage":
        assert usage == w["usage"], (usage, w["usage"])
    else:
        assert usage is None, usage
elif mode == "metric":  # the value of a Prometheus sample
    for line in raw.decode().splitlines():
        if line.startswith(sys.argv[3] + " "):
            print(line.split()[1]); break
    else:
        sys.exit(1)
EOF
}
J() { python3 "$TMP/j.py" "$@"; }
