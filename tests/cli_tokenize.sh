#!/usr/bin/env bash
# cli_tokenize.sh - `vkmoe tokenize` / `vkmoe detokenize`: output on the vocab fixture and the
# tiny model, round trips, and exit codes 0/1/2 with their messages.
# usage: cli_tokenize.sh VKMOE_BINARY FIXTURES_DIR
set -u
# shellcheck source=lib_cli.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib_cli.sh"
cli_tmpdir tokenize

# same NAME WANT GOT: exact string comparison
same() {
    if [ "$2" == "$3" ]; then
        pass=$((pass + 1))
    else
        echo "FAIL: $1"
        echo "  want: $2"
        echo "  got:  $3"
        fail=$((fail + 1))
    fi
}

VOCAB=$FIX/vocab/ggml-vocab-deepseek-llm.gguf
TINY=$FIX/tiny-v3-f32.gguf
SAMPLE="Hello, y'all! How are you 😁 ?我想在apple工作1314151天～"
WANT="17464 11 320 6 436 0 1724 418 340 33701 210 3025 19017 612 9407 2681 16 18 16 19 16 20 16 1398 68940 239"

same "tokenize sample" "$WANT" "$("$VKMOE" tokenize -m "$VOCAB" -p "$SAMPLE" --no-bos --no-special)"
same "tokenize with BOS" "100000 $WANT" "$("$VKMOE" tokenize -m "$VOCAB" -p "$SAMPLE")"
printf '%s' "$SAMPLE" >"$TMP/sample.txt"
same "tokenize -f" "$WANT" "$("$VKMOE" tokenize -m "$VOCAB" -f "$TMP/sample.txt" --no-bos)"
same "tokenize -f -" "$WANT" "$("$VKMOE" tokenize -m "$VOCAB" -f - --no-bos <"$TMP/sample.txt")"
same "empty text" "" "$("$VKMOE" tokenize -m "$VOCAB" -p "" --no-bos)"
same "detokenize round trip" "$SAMPLE" "$("$VKMOE" detokenize -m "$VOCAB" --tokens "$WANT")"
BOS="<｜begin▁of▁sentence｜>"
same "special parsed" "100000 17464" "$("$VKMOE" tokenize -m "$VOCAB" -p "${BOS}Hello" --no-bos)"
same "detokenize renders control" "${BOS}Hello" \
    "$("$VKMOE" detokenize -m "$VOCAB" --tokens "100000 17464")"
same "detokenize --no-special" "Hello" \
    "$("$VKMOE" detokenize -m "$VOCAB" --tokens "100000 17464" --no-special)"
ids=$("$VKMOE" tokenize -m "$VOCAB" -p "${BOS}Hello" --no-bos --no-special)
same "--no-special round trip" "${BOS}Hello" "$("$VKMOE" detokenize -m "$VOCAB" --tokens "$ids")"
[[ " $ids " != *" 100000 "* ]] && pass=$((pass + 1)) || {
    echo "FAIL: --no-special still parsed BOS: $ids"
    fail=$((fail + 1))
}
# the model fixtures' byte vocabulary: BOS, bytes, and the merge "Ġthe"
same "tiny model" "264 72 105 258" "$("$VKMOE" tokenize -m "$TINY" -p "Hi the")"

expect "tokenize --help" 0 "usage: vkmoe tokenize" -- "$VKMOE" tokenize --help
expect "detokenize --help" 0 "usage: vkmoe detokenize" -- "$VKMOE" detokenize --help
expect "tokenize no -m" 2 "usage:" -- "$VKMOE" tokenize -p hi
expect "tokenize no text" 2 "usage:" -- "$VKMOE" tokenize -m "$VOCAB"
expect "tokenize -p and -f" 2 "usage:" -- "$VKMOE" tokenize -m "$VOCAB" -p hi -f "$TMP/sample.txt"
expect "tokenize -p without text" 2 "usage:" -- "$VKMOE" tokenize -m "$VOCAB" -p
expect "tokenize unknown flag" 2 "usage:" -- "$VKMOE" tokenize -m "$VOCAB" -p hi --bogus
expect "tokenize extra argument" 2 "usage:" -- "$VKMOE" tokenize -m "$VOCAB" -p hi extra
expect "tokenize missing model" 1 "^vkmoe: .*nonexistent.gguf" -- \
    "$VKMOE" tokenize -m "$TMP/nonexistent.gguf" -p hi
expect "tokenize missing file" 1 "^vkmoe: .*nofile.txt" -- \
    "$VKMOE" tokenize -m "$VOCAB" -f "$TMP/nofile.txt"
expect "detokenize non-numeric" 2 "usage:" -- "$VKMOE" detokenize -m "$VOCAB" --tokens "1 x 2"
expect "detokenize no --tokens" 2 "usage:" -- "$VKMOE" detokenize -m "$VOCAB"
expect "detokenize no -m" 2 "usage:" -- "$VKMOE" detokenize --tokens "1 2"
expect "detokenize out of range" 1 "out of range" -- \
    "$VKMOE" detokenize -m "$VOCAB" --tokens "1 102400"
expect "detokenize negative" 1 "out of range" -- "$VKMOE" detokenize -m "$VOCAB" --tokens "-1"
expect "detokenize empty list" 0 "" -- "$VKMOE" detokenize -m "$VOCAB" --tokens ""

cli_done
