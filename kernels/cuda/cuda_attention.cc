#include "kernels/cuda/cuda_attention.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_runner.h"
#include "kernels/cuda/fused/fused_attention.h"
#include "kernels/cuda/pipeline.h"
#include "kernels/cuda/workspace_layout.h"
#include "kernels/device_query.h"
#include "kernels/planner.h"
#include "kernels/problem.h"

#if defined(ATTND_WITH_CUDNN)
#include "kernels/cuda/cudnn/cudnn_attention.h"
#endif

namespace attnd::kernels::cuda {

namespace {

// cuBLAS's workspace per context: NVIDIA recommends 32 MiB on Hopper.
constexpr int64_t kCublasWorkspaceBytes = int64_t{32} << 20;

// A non-blocking stream with its own cuBLAS handle and cuBLAS workspace, stored as they are
// made (so that a failure part-way leaves them for DestroyCudaContext).
absl::Status BuildLane(void** stream_out, void** cublas_out, void** workspace_out) {
  cudaStream_t stream = nullptr;
  CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  *stream_out = stream;
  cublasHandle_t cublas = nullptr;
  CUBLAS_RETURN_IF_ERROR(cublasCreate(&cublas));
  *cublas_out = cublas;
  // cublasSetStream resets the workspace to cuBLAS's default pool: set the stream first.
  CUBLAS_RETURN_IF_ERROR(cublasSetStream(cublas, stream));
  CUBLAS_RETURN_IF_ERROR(cublasSetMathMode(
      cublas, static_cast<cublasMath_t>(CUBLAS_DEFAULT_MATH |
                                        CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
  CUDA_RETURN_IF_ERROR(cudaMalloc(workspace_out, kCublasWorkspaceBytes));
  CUBLAS_RETURN_IF_ERROR(
      cublasSetWorkspace(cublas, *workspace_out, static_cast<size_t>(kCublasWorkspaceBytes)));
  return absl::OkStatus();
}

absl::Status BuildContext(int device, CudaContext* c) {
  c->device = device;
  CUDA_RETURN_IF_ERROR(cudaSetDevice(device));
  if (absl::Status s = BuildLane(&c->stream, &c->cublas, &c->cublas_workspace); !s.ok()) return s;
  c->cublas_workspace_bytes = kCublasWorkspaceBytes;
  if (absl::Status s = BuildLane(&c->lane_stream, &c->lane_cublas, &c->lane_cublas_workspace);
      !s.ok()) {
    return s;
  }
  for (void** event : {&c->fork_event, &c->join_event}) {
    cudaEvent_t e = nullptr;
    CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    *event = e;
  }
#if defined(ATTND_WITH_CUDNN)
  // attnd_kernels_cudnn's handle, bound to the same stream (without cuDNN it stays null).
  if (absl::Status s = CreateCudnnHandle(c->stream, &c->cudnn); !s.ok()) return s;
#endif
  return absl::OkStatus();
}

absl::Status CheckTensors(const AttentionProblem& p, const AttentionTensors& t) {
  if (t.q == nullptr || t.k == nullptr || t.v == nullptr) {
    return absl::InvalidArgumentError("tensors.q, tensors.k and tensors.v must all be set");
  }
  if (t.out == nullptr) return absl::InvalidArgumentError("tensors.out must be set");
  if (p.has_bias && t.bias == nullptr) {
    return absl::InvalidArgumentError("problem.has_bias but tensors.bias is null");
  }
  if (p.return_lse && t.lse == nullptr) {
    return absl::InvalidArgumentError("problem.return_lse but tensors.lse is null");
  }
  if (p.has_kv_lengths && t.kv_lengths == nullptr) {
    return absl::InvalidArgumentError("problem.has_kv_lengths but tensors.kv_lengths is null");
  }
  // The offsets are device memory: their values are the caller's to check
  // (ValidateSequenceOffsets) before they are copied there; the kernels clamp lengths.
  if (p.ragged && (t.q_offsets == nullptr || t.kv_offsets == nullptr)) {
    return absl::InvalidArgumentError(
        "problem.ragged but tensors.q_offsets or tensors.kv_offsets is null");
  }
  return absl::OkStatus();
}

absl::Status CheckPlan(const Plan& plan, const AttentionProblem& p, int lanes,
                       const void* workspace, int64_t workspace_bytes) {
  const bool q_axis = plan.variant == Variant::kSliced || plan.variant == Variant::kChunked;
  if (q_axis && plan.q_chunk < 1) {
    return absl::InvalidArgumentError(absl::StrCat("plan.q_chunk = ", plan.q_chunk,
                                                   " must be positive for ",
                                                   std::string(VariantName(plan.variant))));
  }
  if (plan.variant == Variant::kChunked && plan.kv_chunk < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("plan.kv_chunk = ", plan.kv_chunk, " must be positive for chunked"));
  }
  const int64_t needed =
      CudaWorkspaceLayout::For(p, plan.variant, plan.q_chunk, plan.kv_chunk, lanes).bytes;
  if (plan.workspace_bytes < needed) {
    return absl::InvalidArgumentError(absl::StrCat(
        "plan.workspace_bytes = ", plan.workspace_bytes, " but ",
        std::string(VariantName(plan.variant)), " at q_chunk ", plan.q_chunk, " kv_chunk ",
        plan.kv_chunk, " on ", lanes, " lane", lanes == 1 ? "" : "s", " needs ", needed));
  }
  if (workspace_bytes < plan.workspace_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("workspace_bytes = ", workspace_bytes,
                                                   " is smaller than the plan's ",
                                                   plan.workspace_bytes));
  }
  if (workspace == nullptr && needed > 0) {
    return absl::InvalidArgumentError("workspace is null");
  }
  if (reinterpret_cast<uintptr_t>(workspace) % kCudaWorkspaceAlign != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("workspace must be ", kCudaWorkspaceAlign, "-byte aligned"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CreateCudaContext(int device, CudaContext* context) {
  *context = CudaContext();
  CudaContext made;
  if (absl::Status s = BuildContext(device, &made); !s.ok()) {
    DestroyCudaContext(&made);
    return s;
  }
  *context = made;
  return absl::OkStatus();
}

void DestroyCudaContext(CudaContext* context) {
  if (context->stream != nullptr) (void)cudaSetDevice(context->device);
  for (void* stream : {context->stream, context->lane_stream}) {
    if (stream != nullptr) (void)cudaStreamSynchronize(static_cast<cudaStream_t>(stream));
  }
#if defined(ATTND_WITH_CUDNN)
  DestroyCudnnHandle(context->cudnn);  // null is a no-op
#endif
  for (void* event : {context->fork_event, context->join_event}) {
    if (event != nullptr) (void)cudaEventDestroy(static_cast<cudaEvent_t>(event));
  }
  for (void* cublas : {context->cublas, context->lane_cublas}) {
    if (cublas != nullptr) (void)cublasDestroy(static_cast<cublasHandle_t>(cublas));
  }
  for (void* workspace : {context->cublas_workspace, context->lane_cublas_workspace}) {
    if (workspace != nullptr) (void)cudaFree(workspace);
  }
  for (void* stream : {context->stream, context->lane_stream}) {
    if (stream != nullptr) (void)cudaStreamDestroy(static_cast<cudaStream_t>(stream));
  }
  // Teardown errors are not the next call's: clear the (non-sticky) error state.
  (void)cudaGetLastError();
  *context = CudaContext();
}

std::vector<Variant> CudaVariants() {
  if (CudaDeviceCount() == 0) return {};
  if (!CheckKernelImage().ok()) {
    (void)cudaGetLastError();
    return {};
  }
  std::vector<Variant> variants = {Variant::kNaive, Variant::kSliced, Variant::kChunked,
                                   Variant::kFused};
#if defined(ATTND_WITH_CUDNN)
  variants.push_back(Variant::kCudnn);
#endif
  return variants;
}

absl::Status RunCuda(const Plan& plan, const AttentionProblem& problem,
                     const AttentionTensors& tensors, void* workspace, int64_t workspace_bytes,
                     const CudaContext& context) {
  if (context.stream == nullptr || context.cublas == nullptr) {
    return absl::InvalidArgumentError(
        "context has no stream or cuBLAS handle (make it with CreateCudaContext)");
  }
  if (absl::Status s = ValidateProblem(problem, UnlimitedProblemLimits()); !s.ok()) return s;
  if (absl::Status s = CheckTensors(problem, tensors); !s.ok()) return s;
  if (problem.ragged && plan.variant != Variant::kFused) {
    return absl::InvalidArgumentError(
        absl::StrCat("variant ", std::string(VariantName(plan.variant)),
                     " takes no sequence offsets (a ragged batch runs on fused on a GPU)"));
  }
  int current = -1;
  CUDA_RETURN_IF_ERROR(cudaGetDevice(&current));
  if (current != context.device) CUDA_RETURN_IF_ERROR(cudaSetDevice(context.device));

  switch (plan.variant) {
    case Variant::kCudnn:
#if defined(ATTND_WITH_CUDNN)
      return RunCudnn(plan, problem, tensors, workspace, workspace_bytes, context);
#else
      return absl::UnimplementedError(
          "variant cudnn: this build has no cuDNN support (attnd_kernels_cudnn)");
#endif
    case Variant::kFused:
      if (workspace_bytes < plan.workspace_bytes) {
        return absl::InvalidArgumentError(absl::StrCat("workspace_bytes = ", workspace_bytes,
                                                       " is smaller than the plan's ",
                                                       plan.workspace_bytes));
      }
      return RunFused(problem, tensors, workspace, workspace_bytes, context.stream);
    case Variant::kNaive:
    case Variant::kSliced:
    case Variant::kChunked:
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "variant ", std::string(VariantName(plan.variant)), " is not a CUDA variant"));
  }
  const bool has_lane = context.lane_stream != nullptr && context.lane_cublas != nullptr &&
                        context.fork_event != nullptr && context.join_event != nullptr;
  const int lanes =
      has_lane ? CudaLanesUsed(problem, plan.variant, plan.q_chunk, plan.threads) : 1;
  if (absl::Status s = CheckPlan(plan, problem, lanes, workspace, workspace_bytes); !s.ok()) {
    return s;
  }
  auto* main = static_cast<cudaStream_t>(context.stream);
  CudaStepRunner main_runner(main, static_cast<cublasHandle_t>(context.cublas));
  if (lanes == 1) {
    StepRunner* runners[] = {&main_runner};
    return RunSteps(plan, problem, tensors, workspace, runners);
  }
  auto* lane = static_cast<cudaStream_t>(context.lane_stream);
  CudaStepRunner lane_runner(lane, static_cast<cublasHandle_t>(context.lane_cublas));
  // Fork: the second lane starts after what the caller queued on `stream` (the inputs' copies).
  auto* fork = static_cast<cudaEvent_t>(context.fork_event);
  CUDA_RETURN_IF_ERROR(cudaEventRecord(fork, main));
  CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(lane, fork, 0));
  StepRunner* runners[] = {&main_runner, &lane_runner};
  const absl::Status run = RunSteps(plan, problem, tensors, workspace, runners);
  // Join, after a failure too: the caller frees the workspace in `stream`'s order.
  auto* join = static_cast<cudaEvent_t>(context.join_event);
  CUDA_RETURN_IF_ERROR(cudaEventRecord(join, lane));
  CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(main, join, 0));
  return run;
}

}  // namespace attnd::kernels::cuda
