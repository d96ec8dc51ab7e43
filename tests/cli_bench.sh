#!/bin/bash
# cli_bench.sh - `vkmoe bench`: --tokenizer (CPU only, runs first), --micro --quick JSON schema,
# the model benchmark on the tiny fixture (when the engine can evaluate it), --report markdown +
# PNG, the --paging budget/policy sweep against Belady's MIN, and exit codes.
# Usage: bash cli_bench.sh <vkmoe> <fixtures-dir>. With no Vulkan device only the --tokenizer
# part runs: exits 1 if it failed, else 77 (skipped).
vkmoe="$1"
fixtures="$2"
# shellcheck source=lib_cli.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib_cli.sh" # pass, fail, check, cli_done
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
out="$dir/out"

have_python=0
command -v python3 >/dev/null && have_python=1

# ---- tokenizer (needs no GPU) ----
vocab="$fixtures/vocab/ggml-vocab-deepseek-llm.gguf"
tokres="$dir/tok.json"
"$vkmoe" bench --tokenizer -m "$vocab" -r 1 --quiet --json "$tokres" >"$out" 2>&1
rc=$?
check "bench --tokenizer exits 0 (got $rc: $(tail -3 "$out"))" test $rc -eq 0
check "bench --tokenizer prints the table" grep -q "ggml-vocab-deepseek-llm.gguf .* ± " "$out"
check "bench --tokenizer writes JSON" test -s "$tokres"
if [ $have_python -eq 1 ]; then
    check "tokenizer JSON schema" python3 - "$tokres" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert "device" not in d and d["build"]["version"]
t = d["tokenizer"]
assert t["model"].endswith("ggml-vocab-deepseek-llm.gguf"), t
assert t["bytes"] >= 900000 and 0 < t["tokens"] < t["bytes"], t
assert t["encode_mb_per_s"] > 0 and t["encode_stddev"] >= 0 and t["decode_mb_per_s"] > 0, t
assert t["reps"] == 1 and t["roundtrip"] is True, t
EOF
else
    check "tokenizer JSON has encode_mb_per_s > 0" \
        grep -qE '"encode_mb_per_s":[[:space:]]*([1-9]|0\.[0-9]*[1-9])' "$tokres"
fi
for args in "--tokenizer" "--tokenizer -r 2" "--tokenizer -m $vocab --micro" \
    "--tokenizer -m $vocab -p 8" "--tokenizer -m $vocab --device 0" "--tokenizer -m $vocab -r 0"; do
    # shellcheck disable=SC2086
    "$vkmoe" bench $args >"$out" 2>&1
    rc=$?
    check "bench $args exits 2 (got $rc)" test $rc -eq 2
    check "bench $args prints usage" grep -q "usage:" "$out"
done
"$vkmoe" bench --tokenizer -m "$dir/missing.gguf" >"$out" 2>&1
check "bench --tokenizer on a missing file exits 1" test $? -eq 1

"$vkmoe" devices >"$out" 2>&1
if [ $? -ne 0 ]; then
    echo "SKIP: no Vulkan device: $(cat "$out") ($pass passed, $fail failed before the GPU part)"
    [ $fail -eq 0 ] || exit 1
    exit 77
fi

# ---- micro ----
micro="$dir/micro.json"
"$vkmoe" bench --micro --quick -r 3 --max-run 2 --quiet --json "$micro" >"$out" 2>&1
rc=$?
check "bench --micro --quick exits 0 (got $rc: $(tail -3 "$out"))" test $rc -eq 0
check "bench --micro prints the copy bandwidth" grep -q "^copy .* GB/s" "$out"
if grep -q "llvmpipe" "$out"; then # no transfer queue: the upload line says so
    check "bench --micro: upload on the compute queue" grep -q "^upload .*(compute queue" "$out"
fi
check "bench --micro writes JSON" test -s "$micro"
if [ $have_python -eq 1 ]; then
    check "micro JSON schema" python3 - "$micro" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
dev, b, m = d["device"], d["build"], d["micro"]
for k in ("name", "vendor", "type", "driver", "api_version"):
    assert isinstance(dev[k], str) and dev[k], k
assert dev["memory_bytes"] > 0
assert isinstance(b["version"], str) and isinstance(b["commit"], str)
assert m["copy_gbps"] > 0
assert isinstance(m["gemv"], list) and isinstance(m["gemm"], list)
assert isinstance(m["skipped"], list)
ran = {(g["type"], g["shape"]) for g in m["gemv"]}
skipped = {(s["type"], s["shape"]) for s in m["skipped"] if s["kind"] == "gemv"}
for t in ("F16", "Q8_0", "Q4_K"):  # --quick's types: each shape ran or says why not
    for sh in ("7168x2048", "2048x7168"):
        assert (t, sh) in ran or (t, sh) in skipped, (t, sh)
for g in m["gemv"]:
    assert g["gbps"] > 0 and g["pct_copy"] > 0 and g["k"] * g["m"] > 0, g
    assert g["shape"] == "%dx%d" % (g["k"], g["m"]), g
for g in m["gemm"]:
    assert g["gflops"] > 0 and g["n_tokens"] == 512, g
for s in m["skipped"]:
    assert s["kind"] in ("gemv", "gemm") and s["reason"], s
assert len(m["gemv"]) > 0
EOF
else
    check "micro JSON has copy_gbps" grep -q '"copy_gbps"' "$micro"
    check "micro JSON has gemv rows" grep -q '"gbps"' "$micro"
    check "micro JSON has a device name" grep -q '"name"' "$micro"
fi

# ---- model (only when the engine evaluates the fixture) ----
model="$fixtures/tiny-v3-f32.gguf"
res="$dir/model.json"
echo "264 72 101" >"$dir/ids"
if "$vkmoe" logits -m "$model" --tokens-file "$dir/ids" -o "$dir/logits.f32" >"$out" 2>&1; then
    "$vkmoe" bench -m "$model" -p 8 -n 4 -r 2 --json "$res" --csv "$dir/model.csv" >"$out" 2>&1
    rc=$?
    check "bench -m exits 0 (got $rc: $(tail -3 "$out"))" test $rc -eq 0
    check "bench -m table has pp8" grep -q "pp8" "$out"
    check "bench -m table has tg4" grep -q "tg4" "$out"
    check "bench -m CSV has a header and two rows" test "$(wc -l <"$dir/model.csv")" -eq 3
    if [ $have_python -eq 1 ]; then
        check "model JSON schema" python3 - "$res" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["device"]["name"] and d["build"]["version"]
m = d["model"]
assert m["path"].endswith("tiny-v3-f32.gguf") and m["size_bytes"] > 0 and m["type"] == "F32"
r = {x["test"]: x for x in d["results"]}
assert set(r) == {"pp8", "tg4"}, r
assert r["pp8"]["n_tokens"] == 8 and r["tg4"]["n_tokens"] == 4
for x in r.values():
    assert x["tokens_per_s"] > 0 and x["stddev"] >= 0 and x["reps"] == 2, x
EOF
    else
        check "model JSON has pp8" grep -q '"pp8"' "$res"
        check "model JSON has tg4" grep -q '"tg4"' "$res"
    fi
    "$vkmoe" bench -m "$dir/missing.gguf" -p 8 -n 4 >"$out" 2>&1
    check "bench -m on a missing file exits 1" test $? -eq 1
    check "bench -m names a missing file once" test "$(grep -o "missing.gguf" "$out" | wc -l)" -eq 1
    "$vkmoe" bench -m "$dir/gone1.gguf,$dir/gone2.gguf" -p 8 -n 4 >"$out" 2>&1
    check "bench -m a,b: two models, the missing first one named once" \
        bash -c "test \$(grep -o 'gone1.gguf' '$out' | wc -l) -eq 1 && ! grep -q 'gone1.gguf,' '$out'"
    # llama-bench habits: comma lists, -pg, several -m, -o json|csv to stdout, --json -
    cp "$model" "$dir/tiny2.gguf"
    "$vkmoe" bench -m "$model,$dir/tiny2.gguf" -p 8,16 -n 4 -pg 8,4 -r 1 --quiet -o json \
        >"$dir/lists.json" 2>"$out"
    rc=$?
    check "bench lists -o json exits 0 (got $rc: $(tail -3 "$out"))" test $rc -eq 0
    check "bench -o json puts the table on stderr" grep -q "pp8+tg4" "$out"
    if [ $have_python -eq 1 ]; then
        check "bench lists: JSON on stdout, every test of both models" python3 - "$dir/lists.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert "model" not in d and len(d["models"]) == 2, d.keys()
assert all("experts" in m for m in d["models"])
got = [(r["model"].split("/")[-1], r["test"]) for r in d["results"]]
want = [(m, t) for m in ("tiny-v3-f32.gguf", "tiny2.gguf") for t in ("pp8", "pp16", "tg4", "pp8+tg4")]
assert got == want, got
pg = [r for r in d["results"] if r["test"] == "pp8+tg4"][0]
assert pg["n_tokens"] == 8 and pg["n_gen"] == 4 and pg["tokens_per_s"] > 0, pg
EOF
    fi
    "$vkmoe" bench -m "$model" -p 8 -n 4 -r 1 --quiet -o csv >"$dir/o.csv" 2>/dev/null
    check "bench -o csv: a header and two rows on stdout" test "$(wc -l <"$dir/o.csv")" -eq 3
    check "bench -o csv: the header" grep -q "^device,driver,model," "$dir/o.csv"
    "$vkmoe" bench -m "$model" -p 8 -n 4 -r 1 --quiet --json - >"$dir/dash.json" 2>/dev/null
    check "bench --json - writes JSON to stdout" grep -q '"tokens_per_s"' "$dir/dash.json"
    check "bench --json - creates no file named -" test ! -e ./-
    "$vkmoe" bench -m "$model" -p 8 -n 4 -r 1 --json "$dir/no/such/dir/x.json" >"$out" 2>&1
    rc=$?
    check "bench --json into a missing directory exits 1 (got $rc)" test $rc -eq 1
    check "bench --json path checked before the benchmark" \
        bash -c "grep -q 'does not exist' '$out' && ! grep -q 'warm-up' '$out'"
    "$vkmoe" bench -m "$model" -p 8 -n 4 -r 1 --csv "$dir" >"$out" 2>&1
    check "bench --csv onto a directory exits 1" test $? -eq 1
    # depth: both tests start from 16 cached tokens, named as llama-bench names them
    "$vkmoe" bench -m "$model" -p 8 -n 4 -d 16 -r 1 --json "$dir/depth.json" \
        --csv "$dir/depth.csv" >"$out" 2>&1
    rc=$?
    check "bench -d 16 exits 0 (got $rc: $(tail -3 "$out"))" test $rc -eq 0
    check "bench -d 16 table has 'pp8 @ d16'" grep -q "pp8 @ d16" "$out"
    check "bench -d 16 table has 'tg4 @ d16'" grep -q "tg4 @ d16" "$out"
    check "bench -d 16 CSV has n_depth 16" grep -q ",tg4 @ d16,4,16," "$dir/depth.csv"
    if [ $have_python -eq 1 ]; then
        check "depth JSON" python3 - "$dir/depth.json" <<'EOF'
import json, sys
r = {x["test"]: x for x in json.load(open(sys.argv[1]))["results"]}
assert set(r) == {"pp8 @ d16", "tg4 @ d16"}, r
assert all(x["n_depth"] == 16 and x["tokens_per_s"] > 0 for x in r.values()), r
EOF
    fi
else
    echo "note: the engine cannot evaluate $model yet; model benchmark part skipped:" \
        "$(tail -1 "$out")"
    res=""
fi

# ---- report ----
other="$dir/other.json"
sed 's/"name":[[:space:]]*"[^"]*"/"name": "Other GPU 9000"/' "$micro" >"$other"
inputs=("$micro" "$other")
[ -n "$res" ] && inputs+=("$res")
"$vkmoe" bench --report "${inputs[@]}" --md "$dir/r.md" --png "$dir/r.png" >"$out" 2>&1
rc=$?
check "bench --report exits 0 (got $rc: $(tail -3 "$out"))" test $rc -eq 0
check "report has a table header" grep -q '^| device | model |' "$dir/r.md"
check "report has the copy column" grep -q 'copy GB/s' "$dir/r.md"
check "report lists the real device" grep -qF "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["device"]["name"])' "$micro" 2>/dev/null || echo '|')" "$dir/r.md"
check "report lists the other device" grep -q "Other GPU 9000" "$dir/r.md"
# one row per (device, model): the real device's micro and model files merge into one row
check "report has one row per device and model" test "$(grep -c '^| ' "$dir/r.md")" -eq 3
if [ -n "$res" ]; then
    check "report has the pp8 column" grep -q 'pp8 t/s' "$dir/r.md"
    check "report merges a device's micro and model results" \
        grep -qE '^\| [^|]+ \| tiny-v3-f32.gguf \| [0-9.]+ ± [0-9.]+ \|.* [0-9.]+ \|' "$dir/r.md"
fi
if grep -q '"Q4_K"' "$micro"; then
    check "report names the GEMV shape" grep -qE 'Q4_K GEMV [0-9]+x[0-9]+ GB/s' "$dir/r.md"
fi
if [ -s "$dir/lists.json" ]; then # several models in one file: a row each
    "$vkmoe" bench --report "$dir/lists.json" >"$out" 2>&1
    check "report of a two-model file has a row per model" \
        bash -c "grep -q '| tiny-v3-f32.gguf |' '$out' && grep -q '| tiny2.gguf |' '$out'"
fi
check "report PNG has the PNG signature" \
    test "$(head -c 8 "$dir/r.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a"

"$vkmoe" bench --report "$micro" >"$out" 2>&1
check "report to stdout exits 0" test $? -eq 0
check "report to stdout prints the table" grep -q '^| device | model |' "$out"

printf '{"device": {"name": "x"}, "micro": ' >"$dir/bad.json"
"$vkmoe" bench --report "$micro" "$dir/bad.json" --md "$dir/bad.md" >"$out" 2>&1
rc=$?
check "report of malformed JSON exits 1 (got $rc)" test $rc -eq 1
check "report names the malformed file" grep -q "bad.json" "$out"
echo '{"device": {"name": "x"}}' >"$dir/empty.json"
"$vkmoe" bench --report "$dir/empty.json" >"$out" 2>&1
check "report of JSON without results exits 1" test $? -eq 1
"$vkmoe" bench --report "$dir/nope.json" >"$out" 2>&1
check "report of a missing file exits 1" test $? -eq 1

# ---- flags ----
for args in "" "--bogus" "--micro -r 0" "--micro -r abc" "--micro --device x" \
    "-m" "--micro --max-run -1" "-m x.gguf -p -3" "--report" "--report a.json --micro" \
    "--micro --md x.md" "--micro -p 8" "-m x.gguf -p 0 -n 0" "--micro --json" "--micro -d 8" \
    "-m x.gguf -d -1" "-m x.gguf -d 70000" "-m x.gguf -p 8,,16" "-m x.gguf -p 8," \
    "-m x.gguf -pg 8" "-m x.gguf -pg 8,0" "-m x.gguf -o xml" "-m x.gguf -o json --json y.json" \
    "-m x.gguf --json - --csv -" "--micro -o csv" "--paging -m x.gguf -n 4,8"; do
    # shellcheck disable=SC2086
    "$vkmoe" bench $args >"$out" 2>&1
    rc=$?
    check "bench $args exits 2 (got $rc)" test $rc -eq 2
    check "bench $args prints usage" grep -q "usage:" "$out"
done
"$vkmoe" bench --help >"$out" 2>&1
check "bench --help exits 0" test $? -eq 0
for word in "--micro" "--quick" "-p N" "-n N" "-d N" "-r REPS" "--csv F" "--report" "--md F" \
    "--png F" "--tokenizer"; do
    check "bench --help documents $word" grep -q -- "$word" "$out"
done
"$vkmoe" bench --micro --device 99 >"$out" 2>&1
check "bench --device 99 exits 2 with usage" test $? -eq 2

# Expert paging through bench: a budget that holds only part of the experts pages them and
# --stats prints the one-line counters; below the minimum is a clean runtime error. Prefetch is
# off here (its default is on where the device has a transfer queue), so nothing is prefetched
# and the sweep below can compare demand paging with Belady's MIN.
"$vkmoe" bench -m "$fixtures/tiny-v3-f32.gguf" -p 8 -n 4 -r 1 --vram-budget 800K --stats --quiet \
    --prefetch off >"$out" 2>&1
check "bench --vram-budget 800K --stats exits 0" test $? -eq 0
check "bench --stats prints the experts line with misses" \
    grep -qE "^experts: hits=[0-9]+ misses=[1-9][0-9]* prefetched=0 prefetch_used=0 uploaded_bytes=[1-9][0-9]* stall_ms=" "$out"
"$vkmoe" bench -m "$fixtures/tiny-v3-f32.gguf" -p 8 -n 4 -r 1 --vram-budget 100K --quiet >"$out" 2>&1
check "bench below the paging minimum exits 1" test $? -eq 1
check "bench below the minimum names it" grep -q "minimum" "$out"
"$vkmoe" bench -m "$fixtures/tiny-v3-f32.gguf" --expert-policy fifo >"$out" 2>&1
check "bench --expert-policy fifo exits 2" test $? -eq 2
"$vkmoe" bench --micro --stats >"$out" 2>&1
check "bench --micro --stats exits 2" test $? -eq 2

# ---- expert paging sweep (--paging): 5 budgets x 2 policies, Belady's MIN never below a policy;
# the execution modes: 3 budgets x 2 policies x 3 modes, admissions only where the CPU computes
pj="$dir/paging.json"
"$vkmoe" bench --paging -m "$fixtures/tiny-v3-f32.gguf" -n 8 --json "$pj" --png "$dir/paging.png" \
    --prefetch off --quiet >"$out" 2>&1
rc=$?
check "bench --paging exits 0 (got $rc: $(tail -3 "$out"))" test $rc -eq 0
check "bench --paging prints the table" grep -q "| budget % |" "$out"
check "bench --paging PNG has the PNG signature" \
    test "$(head -c 8 "$dir/paging.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a"
if [ $have_python -eq 1 ]; then
    check "paging JSON: 5 budgets x 2 policies, rates in [0,1], Belady >= policy" \
        python3 - "$pj" <<'EOF2'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["device"]["name"] and d["paging_info"]["n_gen"] == 8
rows = d["paging"]
assert len(rows) == 10, len(rows)
assert sorted((r["budget_pct"], r["policy"]) for r in rows) == sorted(
    (p, q) for p in (100, 75, 50, 25, 10) for q in ("lru", "lfu")), rows
for r in rows:
    assert "requests" not in r and r["layer_steps"] >= 0 and r["tokens_per_s_sd"] >= 0, r
    assert 0 < r["expert_fraction"] <= 1, r
    if not r["clamped"]:
        assert abs(r["expert_fraction"] - r["budget_pct"] / 100) < 0.01, r
    else:  # at its real fraction, above the one asked for
        assert r["expert_fraction"] > r["budget_pct"] / 100, r
    for k in ("hit_rate", "belady_hit_rate", "decode_hit_rate"):
        assert 0.0 <= r[k] <= 1.0, (k, r)
    assert r["belady_hit_rate"] >= r["hit_rate"] - 1e-12, r
    assert r["belady_hits"] >= r["hits"], r
    assert r["tokens_per_s"] > 0 and r["mb_per_token"] >= 0 and r["budget_bytes"] > 0, r
    if r["budget_pct"] == 100:
        assert not r["paged"] and r["hit_rate"] == 1.0, r
    else:
        assert r["paged"] and r["slots"] >= 4 and r["hits"] + r["misses"] > 0, r
        assert r["belady_hits"] + r["belady_misses"] == r["hits"] + r["misses"], r
xr = d["paging_exec"]  # 3 budgets x 2 policies x 3 execution modes
assert sorted((r["budget_pct"], r["policy"], r["exec"]) for r in xr) == sorted(
    (p, q, x) for p in (75, 50, 25) for q in ("lru", "lfu") for x in ("gpu", "cpu", "auto")), xr
for r in xr:
    assert r["admitted_per_token"] >= 0 and r["mb_cpu_per_token"] >= 0, r
    if r["exec"] == "gpu":
        assert r["admitted_per_token"] == 0 and r["mb_cpu_per_token"] == 0, r
EOF2
else
    check "paging JSON has belady_hit_rate" grep -q '"belady_hit_rate"' "$pj"
fi
for args in "--paging" "--paging -m x.gguf --micro" "--paging -m x.gguf --tokenizer" \
    "--paging -m x.gguf --report" "--paging -m x.gguf -n 0" "--paging -m x.gguf -p 8" \
    "--paging -m x.gguf --vram-budget 1M" "-m x.gguf --png x.png" "--paging -m x.gguf -d 8"; do
    # shellcheck disable=SC2086
    "$vkmoe" bench $args >"$out" 2>&1
    rc=$?
    check "bench $args exits 2 (got $rc)" test $rc -eq 2
    check "bench $args prints usage" grep -q "usage:" "$out"
done
"$vkmoe" bench --help >"$out" 2>&1
check "bench --help documents --paging" grep -q -- "--paging -m MODEL" "$out"

cli_done
