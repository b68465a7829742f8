#!/usr/bin/env bash
# The CUDA conformance tests (kernels feature `cuda`) on a real GPU; fails if they were skipped.
# Usage: scripts/gpu_check.sh [all|build|run]
#   all (default)  build the test binary (release) and run it here: needs cargo, a GPU, its driver and NVRTC
#   build          only build, and copy the binary to target/gpu-check/cuda_conformance (carry that
#                  folder to a GPU machine that has no cargo or network)
#   run            run target/gpu-check/cuda_conformance, made before by `build`
# FINAGENT_REQUIRE_CUDA=1 makes the tests fail instead of skipping when no device can be used.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mode=${1:-all}
bin=$root/target/gpu-check/cuda_conformance

build() {
    # The JSON messages name the test executable; it is the only artifact with one.
    local exe
    exe=$(cargo test -p kernels --features cuda --release --test cuda_conformance --no-run \
        --message-format=json-render-diagnostics \
        | grep -o '"executable":"[^"]*cuda_conformance[^"]*"' | tail -1 | sed 's/^"executable":"//; s/"$//')
    if [ -z "$exe" ] || [ ! -x "$exe" ]; then
        echo "gpu_check: cargo did not report the cuda_conformance test binary" >&2
        exit 1
    fi
    mkdir -p "$(dirname "$bin")"
    cp "$exe" "$bin"
    # Debug info is most of it (about 53 MB of 55); panics still name the test line without it.
    strip --strip-debug "$bin" 2>/dev/null || true
    echo "gpu_check: built $bin"
}

# cudarc (bindings of CUDA 12.6) loads libnvrtc.so, .so.12 or .so.11; a CUDA 13 install has
# libnvrtc.so.13, possibly off the loader's path. Link the toolkit's (else a pip wheel's) as
# libnvrtc.so in a folder put first on LD_LIBRARY_PATH, with its own folder for libnvrtc-builtins.
# The toolkit's comes first: NVRTC newer than the driver writes PTX the driver cannot load.
find_nvrtc() {
    local roots=() lib=""
    for dir in ${CUDA_HOME:+"$CUDA_HOME"} /usr/local/cuda /usr/local/cuda-*; do
        [ -d "$dir" ] && roots+=("$dir")
    done
    if [ ${#roots[@]} -gt 0 ]; then
        lib=$(find "${roots[@]}" -maxdepth 4 -name 'libnvrtc.so*' ! -name '*builtins*' ! -name '*.alt.*' \
            2>/dev/null | sort -V | tail -1)
    fi
    if [ -z "$lib" ] && command -v python3 >/dev/null; then
        local site
        for site in $(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null); do
            [ -d "$site/nvidia" ] || continue
            lib=$(find "$site/nvidia" -maxdepth 4 -name 'libnvrtc.so*' ! -name '*builtins*' ! -name '*.alt.*' \
                2>/dev/null | sort -V | tail -1)
            [ -n "$lib" ] && break
        done
    fi
    if [ -z "$lib" ]; then
        echo "gpu_check: no libnvrtc found under the CUDA toolkit or python's nvidia packages; using the loader's path"
        return
    fi
    local link_dir=${TMPDIR:-/tmp}/finagent-nvrtc
    mkdir -p "$link_dir"
    ln -sf "$lib" "$link_dir/libnvrtc.so"
    export LD_LIBRARY_PATH=$link_dir:$(dirname "$lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    echo "gpu_check: nvrtc $lib"
}

run() {
    if [ ! -x "$bin" ]; then
        echo "gpu_check: $bin is missing; run scripts/gpu_check.sh build first" >&2
        exit 1
    fi
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
    fi
    find_nvrtc
    local log=${TMPDIR:-/tmp}/finagent-gpu-check.log
    FINAGENT_REQUIRE_CUDA=1 "$bin" --nocapture --test-threads=1 2>&1 | tee "$log"
    # Belt and braces: the variable turns a skip into a failure, but a test added without the
    # helper could still skip quietly.
    if grep -q 'skipped' "$log"; then
        echo "gpu_check: some tests were skipped (no usable GPU); see above" >&2
        exit 1
    fi
    echo "gpu_check: cuda conformance tests passed on the GPU"
}

case "$mode" in
    all)
        build
        run
        ;;
    build) build ;;
    run) run ;;
    *) echo "usage: scripts/gpu_check.sh [all|build|run]" >&2; exit 2 ;;
esac
