#!/usr/bin/env bash
# On the GPU machine, after tests/gpu_server/bundle.sh built and packed everything on the build
# machine: the CUDA executor's GPU tests (its injected faults included), the memory promise through
# attnd (pool limited to 4 GiB; a second process holding all but 3 GiB), the live fault tests on
# the GPU backend, and attnctl attend --check against a served attnd.
# Logs, gtest XML and metrics go to OUT_DIR; a summary to stdout.
#
#   tar -xJf .device/gpu-server/bundle.tar.xz -C /tmp && /tmp/bundle/run_on_device.sh OUT_DIR
set -uo pipefail
out=${1:?usage: run_on_device.sh OUT_DIR}
mkdir -p "$out"
bundle=$(cd "$(dirname "$0")" && pwd)
cudnn_lib=$(python3 -c 'import nvidia.cudnn as m;print(list(m.__path__)[0])' 2>/dev/null)/lib
export LD_LIBRARY_PATH=$bundle/lib:/usr/local/cuda/lib64:$cudnn_lib
export HOLD_MEMORY_BINARY=$bundle/bin/hold_memory
# The integration harness starts attnd from the path it was built at: put the bundle's there.
source "$bundle/paths.env"
for pair in "$BUILT_ATTND:attnd" "$BUILT_ATTNCTL:attnctl"; do
  built=${pair%:*}
  if [ ! -e "$built" ]; then mkdir -p "$(dirname "$built")" && ln -s "$bundle/bin/${pair##*:}" "$built"; fi
done

nvidia-smi > "$out/nvidia-smi.txt" 2>&1
status=0
step() {  # step NAME TIMEOUT COMMAND...: runs it, logs to OUT/NAME.log, prints the verdict
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  echo "== $name: rc=$rc in $((SECONDS - start)) s"
  grep -E '^\[  PASSED  \] [0-9]|^\[  SKIPPED \] [0-9]|^\[  FAILED  \]|^\[ (pool|shared)|Failure|rror' \
    "$out/$name.log" | head -40
  [ $rc -eq 0 ] || status=1
}

step host_test 30 "$bundle/bin/cuda_executor_host_test" --gtest_output="xml:$out/host_test.xml"
step cuda_executor_gpu_test 120 "$bundle/bin/cuda_executor_gpu_test" \
  --gtest_output="xml:$out/cuda_executor_gpu_test.xml"
step memory_promise 240 "$bundle/bin/memory_promise_gpu_test" \
  --gtest_output="xml:$out/memory_promise.xml"
# Injected faults through a live attnd on the GPU (docs/reliability.md); the CPU ones ran in CI.
step faults 300 "$bundle/bin/integration_faults_test" --gtest_filter='*/Cuda' \
  --gtest_output="xml:$out/faults.xml"

# attnctl against a served attnd.
cat > "$out/attnd.yaml" <<'YAML'
server:
  listen: 127.0.0.1:50051
  max_message_bytes: 1GiB
metrics:
  listen: 127.0.0.1:9464
backend:
  kind: auto
memory:
  device_bytes: 8GiB
logging:
  format: text
YAML
"$bundle/bin/attnd" --config "$out/attnd.yaml" > "$out/attnd.log" 2>&1 &
attnd_pid=$!
for _ in $(seq 1 100); do grep -q serving "$out/attnd.log" && break; sleep 0.2; done
ctl() { "$bundle/bin/attnctl" --max-message-bytes 1073741824 "$@"; }
{
  ctl info
  ctl attend --batch 2 --q-len 1025 --kv-len 1025 --heads 8 --head-dim 128 --dtype bf16 \
    --causal bottom-right --lse --check
  ctl attend --batch 1 --q-len 1024 --kv-len 2048 --heads 8 --kv-heads 2 --head-dim 64 \
    --dtype f16 --bias --bias-shape 1,8,1024,2048 --check
  ctl attend --batch 3 --q-len 97 --kv-len 1025 --heads 4 --head-dim 111 --dtype f32 \
    --kv-lengths random --layout bhmk --lse --check
  for v in naive sliced chunked cudnn; do
    ctl attend --batch 1 --q-len 2048 --kv-len 2048 --heads 8 --head-dim 128 --dtype bf16 \
      --causal top-left --variant $v --check
  done
} > "$out/attnctl.log" 2>&1
echo "== attnctl: $(grep -c 'check PASSED' "$out/attnctl.log") checks PASSED, $(grep -c 'check FAILED' "$out/attnctl.log") FAILED"
grep -E '^(ran|check|time)|rror' "$out/attnctl.log" | head -60
python3 - "$out/metrics.txt" <<'PY' 2>/dev/null || curl -s 127.0.0.1:9464/metrics > "$out/metrics.txt"
import sys, urllib.request
open(sys.argv[1], "w").write(urllib.request.urlopen("http://127.0.0.1:9464/metrics").read().decode())
PY
grep -E '^attnd_(pool|device|oom|plans)' "$out/metrics.txt"
kill -TERM $attnd_pid; wait $attnd_pid; echo "== attnd exit: $?"
exit $status
