// attnctl --help.
#include <string>

#include "client/attnctl/flags.h"

namespace attnd::attnctl {

std::string UsageText() {
  return R"(attnctl: command-line client of attnd, exact attention as a gRPC service.

Usage:
  attnctl [global flags] info [--json]
  attnctl [global flags] health [--service NAME]
  attnctl [global flags] attend <problem flags> [--out FILE] [--lse-out FILE] [--check]
  attnctl [global flags] load <problem flags> --concurrency C (--duration D | --requests N)
          [--rps R] [--channels N] [--json FILE] [--echo] [--mixed-lengths MIN-MAX]

Global flags:
  --target ADDR            server, any gRPC target (default 127.0.0.1:50051), e.g.
                           dns:///attnd.default.svc:50051 or ipv4:10.0.0.1:50051,10.0.0.2:50051
  --lb round_robin         spread calls over every address the target resolves to
  --timeout D              deadline of each call: 30s, 500ms, 2m or seconds (default 60s)
  --max-message-bytes N    gRPC message limit (default 268435456)
  --tls                    connect with TLS, trusting the system's CAs
  --tls-ca FILE            connect with TLS, trusting the PEM CAs in FILE
  --tls-cert FILE --tls-key FILE
                           mutual TLS: present this PEM client certificate and key
  --tls-server-name NAME   verify the server's certificate for NAME instead of the
                           target's host (e.g. an IP target)
  --token-file FILE        send "authorization: Bearer <token>" with every call; the token
                           is FILE's first line that is not blank or a '#' comment

health:
  grpc.health.v1 Check, as a load balancer or a container health check asks it. Prints
  SERVING, NOT_SERVING (attnd draining, or after a fatal device error) or UNKNOWN, and exits 0
  only on SERVING.
  --service NAME           the service to ask about (default "": the server as a whole;
                           attnd also answers for attnd.v1.Attention)

Problem flags (attend and load):
  --batch B --q-len M --kv-len N --heads H --head-dim D     required without .npy inputs
  --kv-heads G             key/value heads, dividing H (GQA/MQA; default H)
  --v-head-dim DV          value head dim (default D)
  --dtype f32|f16|bf16     (default f32)
  --layout bmhk|bhmk       [B,M,H,D] as FlashAttention (default) or [B,H,M,D] as PyTorch SDPA
  --causal top-left|bottom-right|none
                           top-left: query i sees keys j <= i (PyTorch is_causal);
                           bottom-right: j <= i + Mk - Mq (FlashAttention 2.1+)
  --window L,R             sliding window, -1 = unbounded on that side
  --bias                   random additive bias of shape [B,H,M,N]; --bias-shape b,h,m,n
                           for a broadcast shape (each 1 or full size, rank 2 to 4)
  --kv-lengths a,b,...|random
                           valid keys per batch element (key padding)
  --lse                    also return the log-sum-exp per row
  --scale S                softmax scale (default 1/sqrt(D))
  --variant NAME           force auto|reference|cpu_chunked|naive|sliced|chunked|cudnn|fused
  --q-chunk N --kv-chunk N chunk sizes (0: the planner's choice)
  --priority P             queue priority (higher first)
  --seed S                 random inputs: N(0,1), never 0, the same for the same seed
  --q a.npy --k b.npy --v c.npy [--bias-file d.npy]
                           inputs from NumPy files (C order, <f4, <f2, or bf16 as <u2, <V2 or
                           'bfloat16'); their shapes define the problem

attend:
  Prints the problem, what ran (variant, chunks, workspace, device, plan reason) and its
  queue, compute and round-trip time.
  --out FILE               save the output as .npy (bf16 is written as '<u2': in Python,
                           np.load(FILE).view(ml_dtypes.bfloat16))
  --lse-out FILE           save the log-sum-exp as .npy (f32; implies --lse)
  --check                  recompute the same problem locally with the float64 reference
                           and compare. Passes when every element has
                           |out - ref| / max(1, |ref|) <= 1e-4 (f32), 4e-3 (f16), 3e-2 (bf16),
                           i.e. absolute on outputs of magnitude <= 1; the LSE too.

load:
  Sends one pre-generated request over and over with at most C calls in flight.
  --mixed-lengths MIN-MAX  a mixed stream instead: --mix-requests N (default 32) requests whose
                           Mq = Mk are spread evenly over [MIN, MAX] (--q-len/--kv-len not
                           given), sent in a shuffled order fixed by --seed, one after the other
  --echo                   call Echo instead of Attend: the same requests and answers of the
                           same size, nothing computed (the wire's own limit)
  --concurrency C          calls in flight, 1 to 4096
  --duration D | --requests N
  --rps R                  open loop at R requests/s in all (latency counted from when each
                           call was due); default closed loop
  --channels N             separate connections to rotate calls over (default 1)
  --json FILE              the summary as JSON: requests, ok, errors{CODE:n}, duration_s,
                           throughput_rps, latency_ms{p50,p90,p99,p999,max,mean},
                           concurrency, target_rps, method, mixed_lengths,
                           distinct_requests, shape
  Latency percentiles are exact (nearest rank over every successful call); throughput counts
  successful calls. A progress line goes to stderr about once a second.

Exit codes:
  0  success (load: at least one request succeeded)
  1  an RPC, file or server error; the gRPC code name and message are printed;
     health: any answer but SERVING
  2  bad command line
  3  attend --check: error beyond the dtype's tolerance
)";
}

}  // namespace attnd::attnctl
