/* weights.h - turning backend load reports into traffic weights.
 *
 * A weight policy is an ops table (HAProxy's struct lb_ops): the registry
 * fills one weights_backend per backend of a service and calls
 * policy->compute() over the whole service at once, because every A58-style
 * step (mean substitution, clamping band, normalisation) looks at all
 * backends together. Adding a policy means adding one table here and one
 * name to weights_policy_find(); nothing else changes.
 *
 * Output scale: before slow start and override, the weights of serving
 * backends average WEIGHTS_SCALE: those with usable reports by
 * normalisation, the others get exactly WEIGHTS_SCALE (the mean). Slow start
 * multiplies on top, so a new backend visibly climbs from ~100 to ~1000 while
 * the others keep their numbers; override_weight is taken as is, in these
 * units. Draining backends get 0; every serving backend gets at least 1.
 *
 * Pure computation: no allocation, no clock reads, no logging. Thread-safe
 * on distinct data; the server calls it from its loop thread. */
#ifndef LA_WEIGHTS_H
#define LA_WEIGHTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lookaside_status.h"

#define WEIGHTS_SCALE 1000u     /* mean output weight of ordinary serving backends */
#define WEIGHTS_MAX 1000000u    /* cap of any output weight (and of override_weight) */

/* Any load input above this is treated as garbage ("huge"): no real backend
 * serves 1e12 requests per second or reports a utilisation of 1e12. The cap
 * also keeps every product and sum in the formula far from overflow. */
#define WEIGHTS_INPUT_MAX 1e12

typedef struct weights_config {
    /* A58's error_utilization_penalty: how much each error per request
     * counts as utilisation. */
    double error_penalty;
    /* Clamping band around the mean of usable raw weights, as multiples of
     * it (clamp_low in [0,1], clamp_high >= 1). */
    double clamp_low, clamp_high;
    /* Smoothing HALF-LIFE in milliseconds (0 = no smoothing). A half-life
     * rather than a per-compute factor because the registry recomputes on
     * reports, membership changes and timers at irregular intervals: the
     * weight of each sample then depends only on elapsed time,
     * alpha = 1 - 2^(-dt/half_life). */
    double smoothing;
    int64_t slow_start_ms;         /* ramp duration for new backends; 0 = no ramp */
    double slow_start_min;         /* ramp floor, fraction of the full weight */
    /* Ramp shape as in Envoy: factor = max(min, t^(1/aggression)), t = elapsed/ramp.
     * 1.0 = linear; > 1 gives more traffic early. */
    double slow_start_aggression;
    int64_t expire_ms;             /* a report older than this is unusable */
    double change_threshold;       /* relative change weights_significant() ignores */
} weights_config;

/* Fills *c with the defaults (see weights.c for the reasons behind each). */
void weights_config_default(weights_config *c);

/* Checks a configuration (e.g. built from flags). Returns LOOKASIDE_OK, or
 * LOOKASIDE_EINVAL with *why (if non-NULL) set to a static text naming the bad
 * field. compute() never trusts the config anyway: a bad field is replaced by
 * its default there, so no config can produce NaN. */
lookaside_status weights_config_check(const weights_config *c, const char **why);

typedef struct weights_input {
    bool has_report;
    double cpu, app, rps, eps;     /* ORCA-shaped: utilisations, requests/s, errors/s */
    int64_t report_ms;             /* monotonic ms of the latest report (future = fresh) */
    bool draining;
    uint32_t override_weight;      /* 0 = none; in output units (WEIGHTS_SCALE = mean) */
    int64_t ramp_start_ms;         /* monotonic ms slow start began; 0 = no ramp */
} weights_input;

/* Kept by the caller between computes, zero-initialised for a new backend.
 * Only the policy writes it. */
typedef struct weights_state {
    double smoothed;               /* EWMA of the clamped weight / mean (1.0 = average) */
    bool primed;                   /* smoothed holds a sample */
    int64_t last_ms;               /* when smoothed was last updated */
} weights_state;

/* Every number that went into a weight, for the admin API. Fields not
 * reached (e.g. raw for a backend without a usable report) are 0. */
typedef struct weights_explain {
    double util, rps, eps;         /* inputs used (util = app if > 0 else cpu) */
    double raw;                    /* rps / (util + eps/rps * penalty) */
    double mean;                   /* mean raw weight of usable serving backends */
    double clamped;                /* raw after the band, same units as raw */
    double alpha;                  /* EWMA weight of this sample (1 = primed, 0 = no time passed) */
    double smoothed;               /* EWMA of clamped/mean */
    double slow_start;             /* multiplier applied (1 = none) */
    bool usable;                   /* the report fed the formula */
    char text[320];                /* one line: every step, human-readable */
} weights_explain;

typedef struct weights_backend {
    weights_input in;              /* filled by the caller */
    weights_state st;              /* kept by the caller, updated by compute */
    uint32_t weight;               /* output */
    weights_explain why;           /* output */
} weights_backend;

struct weights_policy_ops {
    const char *name;
    /* Computes b[i].weight and b[i].why and updates b[i].st for all n
     * backends of one service, as of now_ms (monotonic). Never fails, never
     * produces NaN; any input is accepted. cfg NULL = defaults. */
    void (*compute)(const weights_config *cfg, weights_backend *b, size_t n, int64_t now_ms);
};

/* "a58": gRFC A58 formula with mean substitution, band, smoothing, slow
 * start, expiry, drain and override. The default. */
extern const struct weights_policy_ops weights_policy_a58;
/* "equal": every serving backend WEIGHTS_SCALE, reports and slow start
 * ignored (the plain round_robin baseline); drain and override still apply. */
extern const struct weights_policy_ops weights_policy_equal;

/* The policy named name, NULL if unknown or name is NULL. */
const struct weights_policy_ops *weights_policy_find(const char *name);
/* The i-th known policy (0 is the default), NULL past the end: for --help. */
const struct weights_policy_ops *weights_policy_at(size_t i);

/* True when any weight moved by more than cfg->change_threshold relative to
 * its old value, or went 0 <-> nonzero. old_w must be the weights last
 * PUBLISHED (not last computed), so slow drifts add up until they matter.
 * Both arrays have n entries for the same backends in the same order;
 * membership changes are the caller's to detect. cfg NULL = defaults. */
bool weights_significant(const weights_config *cfg, const uint32_t *old_w, const uint32_t *new_w,
                         size_t n);

#endif
