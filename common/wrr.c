/* wrr.c - interleaved weighted sequences (see wrr.h).
 *
 * Two steps: integer counts per index (gcd reduction, then largest-remainder
 * apportionment when the exact counts do not fit), then an order.
 *
 * The order is nginx's smooth weighted round robin run over GROUPS of
 * indices that share a count, each group taking its members in turn. Plain
 * nginx breaks ties by position, so indices with equal counts are picked
 * back to back: weights 50,1,1,1 give "a... b c d" with one long run of a.
 * As one group of weight 3 they get three evenly spaced slots instead. It
 * also makes the cost O(len * distinct counts) rather than O(len * n), and
 * distinct counts summing to at most len number at most sqrt(2 len).
 *
 * nginx's order still puts an index twice in a row now and then even among
 * near-equal weights (110,100,102,122 does), because an index whose turn was
 * lost on a tie builds up a lead. A last linear pass swaps neighbours where
 * that lowers the number of equal neighbours, reading the sequence as a
 * cycle. Each swap moves two entries by one place, so counts stay exact and
 * every index stays within about one entry of its ideal count at any point. */
#include "wrr.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

typedef struct wrr_item {
    uint32_t idx;   /* index into the caller's weights */
    uint64_t w;     /* weight / gcd */
    uint64_t c;     /* entries in the sequence */
    uint64_t rem;   /* apportionment remainder (w * seats mod total) */
} wrr_item;

typedef struct wrr_group {
    size_t start, size, next; /* members are items[start .. start+size), next in turn */
    int64_t weight;           /* count * size */
    int64_t cur;              /* nginx "current_weight" */
} wrr_group;

static uint64_t gcd64(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static int cmp_w_idx(const void *pa, const void *pb)
{
    const wrr_item *a = pa, *b = pb;
    if (a->w != b->w)
        return a->w < b->w ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static int cmp_rem_desc_idx(const void *pa, const void *pb)
{
    const wrr_item *a = pa, *b = pb;
    if (a->rem != b->rem)
        return a->rem > b->rem ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static int cmp_c_idx(const void *pa, const void *pb)
{
    const wrr_item *a = pa, *b = pb;
    if (a->c != b->c)
        return a->c < b->c ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* Sets it[j].c so that the counts sum to exactly seats, every count >= 1,
 * and otherwise follow the weights by largest remainders. Requires
 * m <= seats < total (sum of w) and seats <= UINT32_MAX, which keeps every
 * product w * seats below 2^64: the arithmetic is exact. */
static void apportion(wrr_item *it, size_t m, uint64_t total, uint64_t seats)
{
    /* Indices whose fair quota is below one seat get exactly one. Taking
     * them smallest first is enough: each one taken lowers seats/total for
     * the rest, so a weight that clears the bar keeps clearing it. */
    qsort(it, m, sizeof *it, cmp_w_idx);
    size_t k = 0;
    while (k < m && it[k].w * seats < total) {
        it[k].c = 1;
        it[k].rem = 0;
        total -= it[k].w;
        seats--;
        k++;
    }
    if (k == m)
        return;
    uint64_t given = 0;
    for (size_t j = k; j < m; j++) {
        uint64_t p = it[j].w * seats;
        it[j].c = p / total; /* >= 1: w * seats >= total here */
        it[j].rem = p % total;
        given += it[j].c;
    }
    /* Sum of floors is within (m - k) of seats; the largest remainders
     * (lowest index on ties, for determinism) get the rest. */
    uint64_t left = seats - given;
    qsort(it + k, m - k, sizeof *it, cmp_rem_desc_idx);
    for (size_t j = k; j < m && left > 0; j++, left--)
        it[j].c++;
}

/* Equal neighbour pairs among (p-1,p), (p,p+1), (p+1,p+2), cyclic; len >= 3. */
static int adj3(const uint32_t *s, size_t len, size_t p)
{
    size_t a = (p + len - 1) % len, c = (p + 1) % len, d = (p + 2) % len;
    return (s[a] == s[p]) + (s[p] == s[c]) + (s[c] == s[d]);
}

/* Swaps s[p] and s[p+1] (cyclic) if that lowers the equal neighbours. */
static bool try_swap(uint32_t *s, size_t len, size_t p)
{
    size_t q = (p + 1) % len;
    if (s[p] == s[q])
        return false;
    int before = adj3(s, len, p);
    uint32_t t = s[p];
    s[p] = s[q];
    s[q] = t;
    if (adj3(s, len, p) < before)
        return true;
    s[q] = s[p];
    s[p] = t;
    return false;
}

/* Breaks up "a a" by swapping the second a forward or the entry before the
 * first a backward. Every accepted swap strictly lowers the count of equal
 * neighbours, so this terminates; two sweeps catch what the first exposed. */
static void spread_repeats(uint32_t *s, size_t len)
{
    if (len < 3)
        return;
    for (int sweep = 0; sweep < 2; sweep++) {
        bool changed = false;
        for (size_t k = 0; k < len; k++) {
            if (s[k] != s[(k + len - 1) % len])
                continue;
            if (try_swap(s, len, k) || try_swap(s, len, (k + len - 2) % len))
                changed = true;
        }
        if (!changed)
            break;
    }
}

lookaside_status wrr_sequence(const uint32_t *weights, size_t n, size_t max_len, uint32_t **out,
                              size_t *len)
{
    if (!out || !len)
        return LOOKASIDE_EINVAL;
    *out = NULL;
    *len = 0;
    if ((n > 0 && !weights) || max_len == 0 || (uint64_t)n > UINT32_MAX)
        return LOOKASIDE_EINVAL;
    if ((uint64_t)max_len > UINT32_MAX)
        max_len = UINT32_MAX;

    size_t m = 0;
    uint64_t g = 0;
    for (size_t i = 0; i < n; i++) {
        if (weights[i]) {
            m++;
            g = gcd64(g, weights[i]);
        }
    }
    if (m == 0)
        return LOOKASIDE_OK;
    if (m > max_len)
        return LOOKASIDE_EINVAL;

    wrr_item *it = calloc(m, sizeof *it);
    if (!it)
        return LOOKASIDE_ENOMEM;
    uint64_t total = 0; /* < 2^64: at most 2^32 weights below 2^32 */
    for (size_t i = 0, j = 0; i < n; i++) {
        if (weights[i]) {
            it[j].idx = (uint32_t)i;
            it[j].w = weights[i] / g;
            it[j].c = it[j].w;
            total += it[j].w;
            j++;
        }
    }
    if (total > max_len) {
        apportion(it, m, total, max_len);
        uint64_t g2 = 0;
        for (size_t j = 0; j < m; j++)
            g2 = gcd64(g2, it[j].c);
        for (size_t j = 0; j < m; j++)
            it[j].c /= g2;
    }
    uint64_t seq_len = 0;
    for (size_t j = 0; j < m; j++)
        seq_len += it[j].c;

    /* Groups of equal count, members in index order. */
    qsort(it, m, sizeof *it, cmp_c_idx);
    size_t ng = 0;
    for (size_t j = 0; j < m; j++)
        if (j == 0 || it[j].c != it[j - 1].c)
            ng++;
    wrr_group *gr = calloc(ng, sizeof *gr);
    uint32_t *seq = malloc((size_t)seq_len * sizeof *seq);
    if (!gr || !seq) {
        free(gr);
        free(seq);
        free(it);
        return LOOKASIDE_ENOMEM;
    }
    for (size_t j = 0, k = 0; j < m; j++) {
        if (j > 0 && it[j].c != it[j - 1].c)
            k++;
        if (gr[k].size == 0)
            gr[k].start = j;
        gr[k].size++;
    }
    for (size_t k = 0; k < ng; k++)
        gr[k].weight = (int64_t)(it[gr[k].start].c * gr[k].size);

    /* nginx smooth WRR: every group gains its weight, the highest current
     * (first on ties) is picked and loses the total. Over seq_len steps each
     * group is picked exactly weight times and all currents return to 0. */
    const int64_t tot = (int64_t)seq_len;
    for (uint64_t s = 0; s < seq_len; s++) {
        size_t best = 0;
        for (size_t k = 0; k < ng; k++) {
            gr[k].cur += gr[k].weight;
            if (gr[k].cur > gr[best].cur)
                best = k;
        }
        wrr_group *b = &gr[best];
        b->cur -= tot;
        seq[s] = it[b->start + b->next].idx;
        if (++b->next == b->size)
            b->next = 0;
    }
    spread_repeats(seq, (size_t)seq_len);
    free(gr);
    free(it);
    *out = seq;
    *len = (size_t)seq_len;
    return LOOKASIDE_OK;
}

double wrr_share_error(const uint32_t *weights, size_t n, const uint32_t *seq, size_t len)
{
    double sum = 0;
    for (size_t i = 0; weights && i < n; i++)
        sum += weights[i];
    if (sum == 0)
        return len == 0 ? 0.0 : (double)INFINITY;
    if (len == 0 || !seq)
        return (double)INFINITY;
    uint64_t *cnt = calloc(n, sizeof *cnt);
    if (!cnt)
        return -1.0;
    double worst = 0;
    for (size_t s = 0; s < len; s++) {
        if (seq[s] >= n || weights[seq[s]] == 0) {
            worst = (double)INFINITY;
            goto out;
        }
        cnt[seq[s]]++;
    }
    for (size_t i = 0; i < n; i++) {
        if (!weights[i])
            continue;
        double want = weights[i] / sum;
        double got = (double)cnt[i] / (double)len;
        double e = (got > want ? got - want : want - got) / want;
        if (e > worst)
            worst = e;
    }
out:
    free(cnt);
    return worst;
}
