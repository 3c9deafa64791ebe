#!/usr/bin/env bash
# The serving benchmark of issue 5, in one command on the GPU machine: attnd with batching on,
# attnd with batching off and the Python peer (bench/peer: grpcio + PyTorch SDPA, unbatched), all
# serving at once on the one GPU, each driven in turn by the same `attnctl load` over
#   (a) small:  B=1 H=8 Mq=Mk=256 D=64 f16
#   (b) mixed:  B=1 H=8 Mq=Mk spread over 64..2048 (32 requests, cycled) D=64 f16
#   (c) large:  B=2 H=5 Mq=Mk=4096 D=64 f16 (Stable Diffusion self-attention)
# at concurrency 1, 8, 64 and 256, closed loop; plus Echo (the same payloads, nothing computed:
# the wire's own limit) against attnd for every cell and against the peer for (c). The GPU's busy
# fraction (nvidia-smi utilization.gpu, sampled every 100 ms) is recorded during each load.
#
#   bench/serving/bundle.sh            # on the build machine: .device/serving/bundle.tar.xz
#   bench/serving/run_serving_bench.sh OUT_DIR    # on the GPU machine, from the repository root
#
# First, when the bundle has it, the CUDA executor's GPU tests (every variant and a batch
# overlapped on two lanes against the float64 reference; RUN_GPU_TESTS=0 skips them): OUT_DIR/
# gpu_tests.log, and the benchmark does not run when they fail.
#
# About 7 minutes in all with the defaults; within one 10-minute device call, or split it:
# SHAPES="a b" in one call and SHAPES=c RUN_GPU_TESTS=0 in another.
#
# Environment: DURATION (each load, default 5s; a warm-up of concurrency + 8 requests comes
# before each), CONCURRENCY ("1 8 64 256"), SHAPES ("a b c"), WORKERS (attnd executors per
# GPU, default 2), MAX_BATCH (batching on: max_batch_requests, default 32), PEER_WORKERS (the
# peer's gRPC threads, default 32), CHANNELS (attnctl connections, default 4), BUNDLE (default
# .device/serving/bundle.tar.xz), BACKEND (attnd's backend.kind, default cuda; cpu, with
# PEER_BACKEND=auto, for a dry run of this script on a machine without a GPU). Writes OUT_DIR/table.md (stdout too), results.jsonl, the
# servers' logs, attnd's metrics after the run and nvidia-smi's view.
set -uo pipefail
out=${1:?usage: run_serving_bench.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
repo=$(cd "$(dirname "$0")/../.." && pwd)
duration=${DURATION:-5s}
concurrency=${CONCURRENCY:-"1 8 64 256"}
shapes=${SHAPES:-"a b c"}
workers=${WORKERS:-2}
max_batch=${MAX_BATCH:-32}
peer_workers=${PEER_WORKERS:-32}
channels=${CHANNELS:-4}
bundle=${BUNDLE:-$repo/.device/serving/bundle.tar.xz}
backend=${BACKEND:-cuda}
peer_backend=${PEER_BACKEND:-cuda}

work=$(mktemp -d /tmp/attnd-serving.XXXXXX)
tar -xJf "$bundle" -C "$work" || { echo "cannot unpack $bundle (run bench/serving/bundle.sh)"; exit 1; }
b=$work/serving
cudnn_lib=$(python3 -c 'import nvidia.cudnn as m;print(list(m.__path__)[0])' 2>/dev/null)/lib
export LD_LIBRARY_PATH=$b/lib:/usr/local/cuda/lib64:$cudnn_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || echo "no nvidia-smi: no GPU busy figures"
if [ -x "$b/bin/cuda_executor_gpu_test" ] && [ "${RUN_GPU_TESTS:-1}" = 1 ]; then
  timeout 300 "$b/bin/cuda_executor_gpu_test" > "$out/gpu_tests.log" 2>&1
  rc=$?
  grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$out/gpu_tests.log"
  [ $rc -eq 0 ] || { echo "== GPU tests failed (rc=$rc): no benchmark"; exit 1; }
fi

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  wait 2>/dev/null
}
trap cleanup EXIT

# attnd NAME PORT METRICS_PORT MAX_BATCH
start_attnd() {
  cat > "$work/$1.yaml" <<YAML
server:
  listen: 127.0.0.1:$2
  max_message_bytes: 1GiB
metrics:
  listen: 127.0.0.1:$3
backend:
  kind: $backend
memory:
  device_bytes: 16GiB
scheduler:
  max_queue_requests: 2048
  max_batch_requests: $4
  max_queue_delay_us: 0
  workers: $workers
logging:
  level: info
  format: text
YAML
  "$b/bin/attnd" --config "$work/$1.yaml" > "$out/$1.log" 2>&1 &
  pids+=($!)
}
start_attnd attnd_on 50051 9464 "$max_batch"
start_attnd attnd_off 50052 9465 1
PYTHONUNBUFFERED=1 python3 "$repo/bench/peer/peer_server.py" --listen 127.0.0.1:50061 \
  --backend "$peer_backend" --workers "$peer_workers" --stubs "$b/stubs" > "$out/peer.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 150); do
  grep -q serving "$out/attnd_on.log" && grep -q serving "$out/attnd_off.log" &&
    grep -q "peer serving" "$out/peer.log" && break
  sleep 0.2
done
for log in attnd_on attnd_off peer; do
  grep -q serving "$out/$log.log" || { echo "$log did not start:"; cat "$out/$log.log"; exit 1; }
done
head -1 "$out/peer.log"

shape_flags() {
  case $1 in
    a) echo "--batch 1 --q-len 256 --kv-len 256 --heads 8 --head-dim 64 --dtype f16" ;;
    b) echo "--batch 1 --heads 8 --head-dim 64 --dtype f16 --mixed-lengths 64-2048 --mix-requests 32" ;;
    c) echo "--batch 2 --q-len 4096 --kv-len 4096 --heads 5 --head-dim 64 --dtype f16" ;;
  esac
}

results=$out/results.jsonl
: > "$results"
# load SHAPE TARGET_NAME PORT CONCURRENCY [--echo]
load() {
  local shape=$1 name=$2 port=$3 c=$4 echo_flag=${5:-}
  local ctl=("$b/bin/attnctl" --target "127.0.0.1:$port" --max-message-bytes 1073741824
             --timeout 120s)
  local flags
  flags=$(shape_flags "$shape")
  # Warm-up: connections, the pool, cuDNN's graphs, PyTorch's kernels.
  # shellcheck disable=SC2086
  timeout 120 "${ctl[@]}" load $flags $echo_flag --concurrency "$c" --channels "$channels" \
    --requests $((c + 8)) > /dev/null 2>&1
  nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits -lms 100 \
    > "$work/util.txt" 2>/dev/null &
  local sampler=$!
  # shellcheck disable=SC2086
  rm -f "$work/load.json"
  timeout 180 "${ctl[@]}" load $flags $echo_flag --concurrency "$c" --channels "$channels" \
    --duration "$duration" --json "$work/load.json" > "$work/load.txt" 2>&1
  local rc=$?
  kill "$sampler" 2>/dev/null
  wait "$sampler" 2>/dev/null
  python3 - "$work/load.json" "$work/util.txt" "$shape" "$name" "$c" "$rc" "$work/load.txt" \
    >> "$results" <<'PY'
import json, sys
path, util_path, shape, name, c, rc, log = sys.argv[1:8]
try:
    r = json.load(open(path))
except Exception:
    r = {"ok": 0, "error": open(log).read()[-400:]}
samples = [float(x) for x in open(util_path).read().split() if x.replace('.', '', 1).isdigit()]
r.update(shape=shape, target=name, concurrency=int(c), rc=int(rc),
         gpu_util=sum(samples) / len(samples) if samples else None, gpu_samples=len(samples))
print(json.dumps(r))
PY
  tail -1 "$results" | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print(
    "%-2s %-10s c=%-4d %9.1f req/s  p50 %8.2f ms  p99 %8.2f ms  gpu %s%%  errors %s" % (
    r["shape"], r["target"], r["concurrency"], r.get("throughput_rps", 0),
    r.get("latency_ms", {}).get("p50", 0), r.get("latency_ms", {}).get("p99", 0),
    "-" if r["gpu_util"] is None else "%.0f" % r["gpu_util"], r.get("errors", r.get("error"))))'
}

start=$SECONDS
for shape in $shapes; do
  for c in $concurrency; do
    load "$shape" attnd_on 50051 "$c"
    load "$shape" attnd_off 50052 "$c"
    load "$shape" peer 50061 "$c"
    load "$shape" echo_attnd 50051 "$c" --echo
    [ "$shape" = c ] && load "$shape" echo_peer 50061 "$c" --echo
  done
done
echo "== loads done in $((SECONDS - start)) s"
python3 - "$out/metrics_attnd_on.txt" <<'PY' 2>/dev/null
import sys, urllib.request
open(sys.argv[1], "w").write(urllib.request.urlopen("http://127.0.0.1:9464/metrics").read().decode())
PY
grep -E '^attnd_(batch_size|batch_tokens|host_copy_bytes_total|stage_duration_seconds_(sum|count)|bytes_(received|sent))' \
  "$out/metrics_attnd_on.txt" 2>/dev/null | grep -v _bucket
python3 "$repo/bench/serving/table.py" "$results" | tee "$out/table.md"
