/* wrr.h - interleaved weighted sequences.
 *
 * One sequence serves two readers: the grpclb adapter sends it as a server
 * list (stock clients round-robin over it in order, over and over), and the
 * client library walks it as its pick table. Both read it cyclically, so the
 * order is chosen to be well spread around the cycle, not only from its start.
 *
 * Pure functions, no global state: thread-safe. */
#ifndef LA_WRR_H
#define LA_WRR_H

#include <stddef.h>
#include <stdint.h>

#include "lookaside_status.h"

/* Builds a sequence of indices into weights[0..n) of length <= max_len in
 * which index i appears in proportion to weights[i] (zero-weight entries
 * never appear), appearances spread out, deterministic for the same input.
 *
 * Counts: weights are first divided by their gcd, so equal weights give a
 * sequence of length (number of nonzero weights). When the exact proportions
 * need more than max_len entries, the counts are apportioned over exactly
 * max_len entries (largest remainders, exact integer arithmetic) with every
 * nonzero weight kept at >= 1 entry, then divided by their gcd again.
 * Order: nginx smooth weighted round robin over groups of indices sharing
 * a count, each group taking its members in turn, so equal-weight indices
 * are spread evenly rather than picked back to back; then neighbours are
 * swapped where that breaks up a repeat, reading the sequence as a cycle.
 * With three or more indices of comparable weight (none over twice
 * another) no index appears twice in a row, across the wrap included.
 *
 * Returns LOOKASIDE_OK with *out (caller frees with free()) and *len; when
 * every weight is zero (or n == 0), *out = NULL and *len = 0.
 * LOOKASIDE_EINVAL when out/len are NULL, weights is NULL with n > 0,
 * max_len == 0, n > UINT32_MAX, or more weights are nonzero than max_len can
 * hold. LOOKASIDE_ENOMEM when allocation fails. On error *out = NULL and
 * *len = 0. max_len above UINT32_MAX is treated as UINT32_MAX.
 * Cost: O(n log n + len * d), d = number of distinct counts (<= sqrt(2 len)). */
lookaside_status wrr_sequence(const uint32_t *weights, size_t n, size_t max_len, uint32_t **out,
                              size_t *len);

/* Worst relative share error of a sequence against the weights:
 * max over nonzero i of |share_in_seq(i) - share_in_weights(i)| / share_in_weights(i).
 * 0 for a perfect sequence (and for all-zero weights with an empty sequence).
 * INFINITY when seq names an index >= n or a zero-weight index, or is empty
 * while some weight is not. -1.0 when memory for counting is unavailable.
 * For tests and logs. */
double wrr_share_error(const uint32_t *weights, size_t n, const uint32_t *seq, size_t len);

#endif
