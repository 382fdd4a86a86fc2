#!/usr/bin/env bash
# nanochat, the notebook course: set-up + pipeline + tests, in one script.
#
#   bash run_all.sh                 set up (if needed), then run the whole pipeline
#                                   (profile `cpu` without a CUDA GPU, `speedrun` with one)
#   bash run_all.sh test            set up (if needed), then the test suite: notebook hygiene
#                                   (clean + export in sync), nbdev_test, cargo test, pytest
#   bash run_all.sh test [--slow] [--flags "F ..."] [--dtype bfloat16|float32] [--only 05,06,...]
#                                   test options (`bash run_all.sh test --help`)
#   bash run_all.sh bench           set up, then the benchmark notebooks at real sizes
#   bash run_all.sh setup           only the set-up
#   bash run_all.sh gpu-check       set up, then the one-GPU check of the speedrun model (python -m nanochat.gpu_check)
#   bash run_all.sh [--profile P] [stage ...] [-p name value ...] [--dry-run] [--force]
#                                   pipeline options, handled by `python -m nanochat.pipeline`
#
# Environment: PYTHON (interpreter for the venv, default python3), NANOCHAT_BASE_DIR (artifacts,
# default ~/.cache/nanochat), NANOCHAT_VENV (default ./.venv).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
VENV="${NANOCHAT_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"

say() { printf '\033[1m[run_all]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[run_all] error:\033[0m %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# Set-up: a venv with the pinned dependencies, our Rust tokenizer built in release mode, and the
# package installed editable. Each part re-runs only when its inputs changed (a hash stamp).
# ---------------------------------------------------------------------------------------------
hash_files() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

check_tools() {
    local base_py="${PYTHON:-python3}"
    command -v "$base_py" >/dev/null 2>&1 || die "no '$base_py' found. Install Python >= 3.10 (e.g. 'apt-get install python3 python3-venv') or set PYTHON=/path/to/python3."
    "$base_py" - <<'EOF' || die "Python >= 3.10 is needed; '${PYTHON:-python3}' is older. Set PYTHON=/path/to/python3.10+."
import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)
EOF
    "$base_py" -c "import venv, ensurepip" 2>/dev/null || die "'$base_py' lacks venv/ensurepip. On Debian/Ubuntu: apt-get install python3-venv"
    command -v cargo >/dev/null 2>&1 || die "no 'cargo' found: the tokenizer (rustbpe/) is written in Rust. Install a Rust toolchain without root: 'curl https://sh.rustup.rs -sSf | sh' (then open a new shell), or 'apt-get install cargo'."
}

ensure_bubblewrap() {   # the code-execution sandbox (nbs/12_execution) runs programs under bubblewrap
    command -v bwrap >/dev/null 2>&1 && return 0
    [ "$(uname -s)" = Linux ] || { say "note: no bubblewrap on $(uname -s): code execution runs with Python guards only (not isolated)"; return 0; }
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing bubblewrap (apt-get install bubblewrap) for the code-execution sandbox"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap) >/dev/null 2>&1 \
            || say "warning: apt-get install bubblewrap failed: code execution will not be isolated"
    else
        say "note: bubblewrap ('bwrap') is missing: code execution will not be isolated. Install it: sudo apt-get install bubblewrap (Debian/Ubuntu), sudo dnf install bubblewrap (Fedora)"
    fi
}

setup() {
    local t0=$SECONDS
    check_tools
    ensure_bubblewrap
    if [ ! -x "$PY" ]; then
        say "creating the virtual environment $VENV"
        "${PYTHON:-python3}" -m venv "$VENV" || die "could not create $VENV"
        "$PY" -m pip install --quiet --upgrade pip
    fi
    local stamp_dir="$VENV/.nanochat-setup"; mkdir -p "$stamp_dir"

    # 1. Python dependencies (torch from PyPI, the course tools) and our package, editable.
    local deps_hash; deps_hash="$(hash_files pyproject.toml settings.ini)"
    if [ "$(cat "$stamp_dir/deps" 2>/dev/null)" != "$deps_hash" ]; then
        say "installing the pinned Python dependencies (torch is ~3 GB the first time; pip caches it)"
        "$PY" -m pip install --quiet --disable-pip-version-check -e ".[course]" > "$stamp_dir/pip.log" 2>&1 \
            || { tail -n 30 "$stamp_dir/pip.log"; die "pip install of the dependencies failed (log: $stamp_dir/pip.log). Is PyPI reachable?"; }
        echo "$deps_hash" > "$stamp_dir/deps"
    fi

    # 2. Our Rust BPE trainer, built with maturin in release mode and installed as a wheel.
    if [ -f rustbpe/Cargo.toml ]; then
        local rust_hash; rust_hash="$(hash_files rustbpe/Cargo.toml rustbpe/Cargo.lock rustbpe/pyproject.toml $(find rustbpe/src -type f 2>/dev/null | sort))"
        if [ "$(cat "$stamp_dir/rustbpe" 2>/dev/null)" != "$rust_hash" ] || ! "$PY" -c "import rustbpe" 2>/dev/null; then
            say "building rustbpe (Rust, release mode) with maturin"
            rm -rf "$stamp_dir/wheels"
            (cd rustbpe && "$VENV/bin/maturin" build --release --quiet --interpreter "$PY" --out "$stamp_dir/wheels") \
                || die "building rustbpe failed (see the cargo output above)"
            "$PY" -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall "$stamp_dir"/wheels/rustbpe-*.whl \
                || die "installing the rustbpe wheel failed"
            echo "$rust_hash" > "$stamp_dir/rustbpe"
        fi
        # PyPI has an unrelated `rustbpe`; ours carries a local version label, so check we got ours.
        "$PY" - <<'EOF' || die "the installed 'rustbpe' is not this project's build (PyPI's rustbpe shadows it?). Remove it: $VENV/bin/pip uninstall -y rustbpe, then re-run."
import importlib.metadata as md, sys
sys.exit(0 if "+nanochat" in md.version("rustbpe") else 1)
EOF
    fi
    # The notebooks' kernel must be the venv's Python: register it inside the venv.
    if [ ! -f "$VENV/share/jupyter/kernels/python3/kernel.json" ]; then
        "$PY" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ipykernel)" >/dev/null
    fi
    # A GPU that nvidia-smi sees but torch cannot use (driver older than torch's CUDA build) must not fall back
    # to the cpu profile on a paid node: stop here with the driver and CUDA versions and how to fix it.
    "$PY" -m nanochat.gpu_check --driver-only || die "torch cannot use this machine's GPU (see the message above)"
    say "set-up done in $((SECONDS - t0)) s ($VENV)"
}

# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------
test_usage() {
    cat <<'EOF'
bash run_all.sh test [options]    the test suite; its last line reads "total: N passed, N failed"

  --slow              also run the cells flagged `slow` (nbdev_test --flags slow)
  --flags "F ..."     also run the cells with these flags (the tst_flags of settings.ini)
  --dtype D           run with NANOCHAT_DTYPE=D (bfloat16 or float32) instead of this machine's choice
  --only 05,06,08a    only these notebooks (by number), and nothing else: no hygiene check,
                      no cargo or pytest; for a focused pass such as the other-dtype one of .ci/run
  -h, --help          this help
EOF
}

TEST_FLAGS=() TEST_DTYPE="" TEST_ONLY=()
parse_test_args() {
    local known; known=" $(sed -n 's/^tst_flags *= *//p' settings.ini) "
    while [ $# -gt 0 ]; do
        case "$1" in
            --slow) TEST_FLAGS+=(slow) ;;
            --flags)
                [ $# -ge 2 ] || die "--flags needs a value, e.g. --flags 'slow browser'"
                local f; for f in $2; do TEST_FLAGS+=("$f"); done; shift ;;
            --dtype)
                [ $# -ge 2 ] || die "--dtype needs a value: bfloat16 or float32"
                case "$2" in bfloat16|float32) TEST_DTYPE="$2" ;; *) die "--dtype must be bfloat16 or float32; got '$2'" ;; esac
                shift ;;
            --only)
                [ $# -ge 2 ] || die "--only needs a comma-separated list of notebook numbers, e.g. --only 05,06,08a"
                local n; for n in ${2//,/ }; do
                    local hits=(nbs/"$n"_*.ipynb)
                    [ -f "${hits[0]}" ] || die "--only: no notebook nbs/${n}_*.ipynb"
                    TEST_ONLY+=("$n")
                done; shift ;;
            -h|--help) test_usage; exit 0 ;;
            *) die "unknown test option '$1' (bash run_all.sh test --help)" ;;
        esac
        shift
    done
    local f; for f in ${TEST_FLAGS[@]+"${TEST_FLAGS[@]}"}; do
        [[ "$known" == *" $f "* ]] || die "unknown test flag '$f': settings.ini's tst_flags are$known"
    done
}

run_tests() {
    local failed=() npass=0 nfail=0 t0=$SECONDS
    # Tests must never touch a user's real artifacts: give the whole run a scratch base dir.
    SCRATCH="$(mktemp -d -t nanochat-test-XXXXXX)"
    trap 'rm -rf "$SCRATCH"' EXIT
    local scratch="$SCRATCH"
    export NANOCHAT_BASE_DIR="$scratch/base"
    export NANOCHAT_THREADS=1          # nbdev_test runs two notebooks at once on 2 cores
    export OMP_NUM_THREADS=1 MPLBACKEND=Agg PYTHONUNBUFFERED=1
    if [ -n "$TEST_DTYPE" ]; then export NANOCHAT_DTYPE="$TEST_DTYPE"; fi
    local flags="${TEST_FLAGS[*]-}" chosen
    chosen="$("$PY" -c 'from nanochat.common import compute_dtype; print(compute_dtype("cpu"))')"
    say "test pass: compute dtype $chosen${NANOCHAT_DTYPE:+ (NANOCHAT_DTYPE=$NANOCHAT_DTYPE)}, flags: ${flags:-none}${TEST_ONLY[0]:+, notebooks: ${TEST_ONLY[*]}}"

    # 1. Hygiene: notebooks clean and the package in sync with them. We clean and export a copy
    #    of the course in a temporary directory and compare, so nothing in the work tree changes.
    if [ ${#TEST_ONLY[@]} -eq 0 ]; then
        say "checking that notebooks are clean and nanochat/ is their export"
        local copy="$scratch/copy"; mkdir -p "$copy"
        cp -r settings.ini pyproject.toml nbs "$copy"/
        (cd "$copy" && "$VENV/bin/nbdev_clean" >/dev/null && "$VENV/bin/nbdev_export" >/dev/null) \
            || die "nbdev_clean/nbdev_export failed on a copy of the course"
        local dirty=() stale=()
        while IFS= read -r nb; do
            cmp -s "$nb" "$copy/$nb" || dirty+=("$nb")
        done < <(find nbs -name '*.ipynb' -not -path '*/.ipynb_checkpoints/*' | sort)
        while IFS= read -r f; do
            cmp -s "$f" "$copy/$f" 2>/dev/null || stale+=("$f")
        done < <(cd "$copy" && find nanochat -name '*.py' | sort)
        while IFS= read -r f; do   # modules that no notebook exports
            [ -f "$copy/$f" ] || stale+=("$f (no notebook exports it)")
        done < <(find nanochat -name '*.py' -not -path '*/__pycache__/*' | sort)
        if [ ${#dirty[@]} -gt 0 ]; then
            failed+=("hygiene"); nfail=$((nfail + 1))
            say "FAIL: these notebooks are not clean (outputs or metadata committed); run .venv/bin/nbdev_clean:"
            printf '    %s\n' "${dirty[@]}"
        else npass=$((npass + 1)); fi
        if [ ${#stale[@]} -gt 0 ]; then
            failed+=("export"); nfail=$((nfail + 1))
            say "FAIL: nanochat/ is out of sync with the notebooks; run .venv/bin/nbdev_export and commit:"
            printf '    %s\n' "${stale[@]}"
        else npass=$((npass + 1)); fi

    fi

    # 2. Every notebook (or those of --only), top to bottom (nbdev_test), two at a time.
    local expected select=()
    if [ ${#TEST_ONLY[@]} -gt 0 ]; then
        local re; re="^($(IFS='|'; echo "${TEST_ONLY[*]}"))_"
        select=(--file_re "$re")
        expected=$(find nbs -maxdepth 1 -name '*.ipynb' -not -name '_*' -printf '%f\n' | grep -Ec "$re" || true)
    else
        expected=$(find nbs -maxdepth 1 -name '*.ipynb' -not -name '_*' | wc -l)
    fi
    say "running nbdev_test on $expected notebooks (2 workers)${flags:+, flags: $flags}"
    local log="$scratch/nbdev_test.log" rc=0
    "$VENV/bin/nbdev_test" --n_workers 2 --do_print --timing --path nbs ${select[@]+"${select[@]}"} --flags "$flags" 2>&1 | tee "$log" || rc=$?
    local ran; ran=$(grep -c '^- Completed ' "$log" || true)
    local nbfail; nbfail=$(sed -n '/nbdev Tests Failed On The Following Notebooks/,$p' "$log" | grep -c $'^\t' || true)
    if [ "$ran" -ne "$expected" ]; then
        say "FAIL: nbdev_test ran $ran notebooks, expected $expected"
        failed+=("nbdev_test (count)"); nfail=$((nfail + 1))
    fi
    if [ "$rc" -ne 0 ]; then
        [ "$nbfail" -gt 0 ] || nbfail=1
        failed+=("notebooks: $(sed -n '/nbdev Tests Failed On The Following Notebooks/,$p' "$log" | grep $'^\t' | tr -d '\t' | tr '\n' ' ')")
    fi
    npass=$((npass + ran - nbfail)); nfail=$((nfail + nbfail))
    say "notebooks: $((ran - nbfail)) passed, $nbfail failed"

    # 3. The Rust crate: cargo's unit tests, then the Python-level tests of the built extension.
    if [ ${#TEST_ONLY[@]} -eq 0 ] && [ -f rustbpe/Cargo.toml ]; then
        say "cargo test (rustbpe)"
        local clog="$scratch/cargo.log"
        if (cd rustbpe && cargo test --release 2>&1) | tee "$clog"; then :; else failed+=("cargo test"); fi
        local cp cf
        cp=$(grep -Eo 'test result: [A-Za-z]+\. [0-9]+ passed' "$clog" | awk '{s+=$4} END {print s+0}' || true)
        cf=$(grep -Eo '[0-9]+ failed' "$clog" | awk '{s+=$1} END {print s+0}' || true)
        [[ " ${failed[*]-} " == *"cargo test"* ]] && [ "$cf" -eq 0 ] && cf=1
        npass=$((npass + cp)); nfail=$((nfail + cf))
    fi
    if [ ${#TEST_ONLY[@]} -eq 0 ] && [ -d rustbpe/tests ]; then
        say "pytest rustbpe/tests"
        local plog="$scratch/pytest.log" prc=0
        "$PY" -m pytest -q -p no:cacheprovider rustbpe/tests 2>&1 | tee "$plog" || prc=$?
        local pp pf
        pp=$(tail -n 3 "$plog" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}' || true)
        pf=$(tail -n 3 "$plog" | grep -Eo '[0-9]+ (failed|error|errors)' | awk '{s+=$1} END {print s+0}' || true)
        if [ "$prc" -ne 0 ]; then failed+=("pytest"); [ "$pf" -gt 0 ] || pf=1; fi
        npass=$((npass + pp)); nfail=$((nfail + pf))
    fi

    say "tests took $((SECONDS - t0)) s"
    if [ ${#failed[@]} -gt 0 ]; then
        say "FAILED: ${failed[*]}"
        echo "total: $npass passed, $nfail failed"
        exit 1
    fi
    echo "total: $npass passed, 0 failed"
}

# ---------------------------------------------------------------------------------------------
# Pipeline and benchmarks: the stage runner lives in the package (nbs/19c_pipeline.ipynb).
# ---------------------------------------------------------------------------------------------
run_pipeline() {
    if [ ! -f nanochat/pipeline.py ]; then
        say "no pipeline stages exist yet (nanochat/pipeline.py is not there): nothing to run."
        exit 0
    fi
    exec "$PY" -m nanochat.pipeline "$@"
}

cmd="${1:-}"
case "$cmd" in
    -h|--help|help)
        sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    setup)
        setup ;;
    test)
        shift; parse_test_args "$@"; setup; run_tests ;;
    gpu-check)
        shift; setup; exec "$PY" -m nanochat.gpu_check "$@" ;;
    *)
        setup; run_pipeline "$@" ;;
esac
