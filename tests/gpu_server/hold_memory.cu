// hold_memory: a second process on the GPU that takes all of its memory but LEAVE bytes, so that
// attnd must plan around memory it does not own (the issue's shared-card promise).
//
//   hold_memory LEAVE_BYTES [DEVICE]
//
// Prints one line "holding H bytes on cuda:D, free now F of T" once it holds them, then keeps
// holding (and takes memory freed later) until it is killed. Exits 1 (with a line on stderr)
// when it cannot.
#include <cuda_runtime.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

bool Check(cudaError_t error, const char* call) {
  if (error == cudaSuccess) return true;
  std::fprintf(stderr, "hold_memory: %s: %s\n", call, cudaGetErrorString(error));
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: hold_memory LEAVE_BYTES [DEVICE]\n");
    return 2;
  }
  const int64_t leave = std::strtoll(argv[1], nullptr, 10);
  const int device = argc > 2 ? std::atoi(argv[2]) : 0;
  if (!Check(cudaSetDevice(device), "cudaSetDevice") || !Check(cudaFree(nullptr), "cudaFree")) {
    return 1;
  }
  std::vector<void*> blocks;
  int64_t held = 0;
  size_t free_bytes = 0;
  size_t total_bytes = 0;
  // Takes what is free beyond LEAVE bytes (within 2 MiB, the driver's granule), in pieces of at
  // most 1 GiB, halving when the driver refuses one.
  auto top_up = [&]() -> bool {
    int64_t piece = int64_t{1} << 30;
    for (;;) {
      if (!Check(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo")) return false;
      const int64_t excess = static_cast<int64_t>(free_bytes) - leave;
      if (excess < (int64_t{2} << 20)) return true;
      const int64_t want = excess < piece ? excess : piece;
      void* block = nullptr;
      if (cudaMalloc(&block, static_cast<size_t>(want)) != cudaSuccess) {
        cudaGetLastError();
        piece /= 2;
        if (piece < (int64_t{2} << 20)) return true;
        continue;
      }
      blocks.push_back(block);
      held += want;
    }
  };
  if (!top_up()) return 1;
  std::printf("holding %lld bytes on cuda:%d, free now %lld of %lld\n",
              static_cast<long long>(held), device, static_cast<long long>(free_bytes),
              static_cast<long long>(total_bytes));
  std::fflush(stdout);
  // Memory another process frees later (one that was exiting as this started) is taken too, so
  // that no more than LEAVE bytes are ever free on its account.
  for (;;) {
    usleep(100 * 1000);
    if (!top_up()) return 1;
  }
}
