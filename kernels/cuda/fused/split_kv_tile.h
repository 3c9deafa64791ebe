// The tile of the fused variant's split-KV kernel (split_kv.cuh), as constexpr plain C++: the
// launcher reads its shared memory and threads from here, and so does the host's split
// heuristic (kernels/fused_support.cc, no CUDA), which sizes the card's CTA slots from the same
// numbers. One CTA = one 16-row m-tile of query rows (kSplitRows) × one key split; its warps
// share the rows and take 16 keys each of every block of block_n keys.
#ifndef ATTND_KERNELS_CUDA_FUSED_SPLIT_KV_TILE_H_
#define ATTND_KERNELS_CUDA_FUSED_SPLIT_KV_TILE_H_

#include <cstdint>

namespace attnd::kernels::fused_split {

// Query rows per CTA: one mma m16 tile. Decode rows are few (group · Mq, 4 at the issue's
// shape), so a larger tile would only multiply zero rows.
inline constexpr int kSplitRows = 16;
// Keys each warp takes from a block: one k16 step of P·V.
inline constexpr int kWarpKeys = 16;

struct SplitKvTile {
  int dim = 0;     // padded head dim, one of kFusedDims (kernels/fused_support.h)
  int warps = 0;   // warps per CTA; block_n = kWarpKeys · warps
  int stages = 0;  // K/V blocks in the cp.async ring (stages - 1 in flight while one computes)

  constexpr int block_n() const { return kWarpKeys * warps; }
  constexpr int threads() const { return 32 * warps; }
  constexpr int stride() const {
    return dim + 8;
  }  // shared row stride (+16 bytes: no bank conflicts)
  // Q [16, stride] then the ring of stages × (K, V) [block_n, stride], 16-bit elements.
  constexpr int64_t SmemBytes() const {
    return int64_t{kSplitRows + 2 * stages * block_n()} * stride() * 2;
  }
};

// D <= 128: 4 warps, 64-key blocks, 3 stages: 106 KiB at D 128, two CTAs per SM, up to
// 2 × 2 × 34 KiB of K and V in flight per SM (Little's law needs ~25 KiB per SM at 4.8 TB/s and
// ~0.7 µs). D > 128: 2 warps and 32-key blocks, so that three stages still fit twice per SM
// (107 KiB at D 256) and O [16, 256] f32 stays at 128 registers per thread.
constexpr SplitKvTile SplitKvTileFor(int dim) {
  return dim <= 128 ? SplitKvTile{dim, 4, 3} : SplitKvTile{dim, 2, 3};
}

// CTAs of the split kernel one SM holds, from shared memory alone (228 KiB per SM on Hopper,
// 1 KiB reserved per CTA; registers allow more at every dim), at most 8.
constexpr int SplitKvCtasPerSm(int dim) {
  const int64_t per_sm = int64_t{228} * 1024;
  const int64_t n = per_sm / (SplitKvTileFor(dim).SmemBytes() + 1024);
  return n < 1 ? 1 : (n > 8 ? 8 : static_cast<int>(n));
}

}  // namespace attnd::kernels::fused_split

#endif  // ATTND_KERNELS_CUDA_FUSED_SPLIT_KV_TILE_H_
