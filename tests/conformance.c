/*
 * conformance.c — the evio conformance suite: one suite, built once per
 * backend (tests/conformance-<backend>), run by `make check`.
 *
 * Written against the public API only (evio.h); the single look inside is
 * evio__backend's name and capability bits, so the output can say which
 * backend ran and why a test does not apply, if one ever does not.
 *
 * Every test runs in its own forked child (Check's CK_FORK), starts its own
 * server on a thread, binds port 0 or a unique unix path (the four
 * backends' suites run in parallel), is bounded in time (a per-case
 * timeout, client socket timeouts, bounded waits), and must leave no fd
 * behind (a checked fixture counts /proc/self/fd).
 *
 * Environment: CK_RUN_CASE=<case> / CK_RUN_SUITE as usual with Check;
 * CK_VERBOSITY=verbose lists every test; EVIO_TEST_SLOW=<n> multiplies
 * every time bound (sanitizer builds use 3); EVIO_FAULT_SEED=<n> runs the
 * suite under the fault layer's transparent profile with that seed (see
 * tests/fault.h; every test child starts the schedule afresh), which
 * tests/conformance-faulted.sh does with CK_EXCLUDE_TAGS=slow.
 */
#include "harness.h"
#include "fault.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

/* Run one short-lived server before any test forks, so that state a backend
 * library creates once per process (libuv's signal pipe, for one) already
 * exists in every child and is not mistaken for an fd leak. */
static evio_action warmup_tick(evio_server *srv, int64_t *delay)
{
    (void)srv, (void)delay;
    return EVIO_SHUTDOWN;
}

static atomic_int warmup_rc = 1;

static void *warmup_thread(void *arg)
{
    (void)arg;
    static const char *const addrs[] = {"tcp://127.0.0.1:0"};
    evio_events ev = {.tick = warmup_tick};
    atomic_store(&warmup_rc, evio_serve(&ev, addrs, 1));
    return NULL;
}

static void warmup(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, warmup_thread, NULL) != 0)
        return;
    int64_t deadline = h_now_ms() + 5000 * h_slow;
    while (atomic_load(&warmup_rc) == 1 && h_now_ms() < deadline)
        h_sleep_ms(1);
    int rc = atomic_load(&warmup_rc);
    if (rc == 1) {
        printf("warning: a server whose first tick returns EVIO_SHUTDOWN did not stop "
               "within 5 s (the tick tests will say more)\n");
        pthread_detach(t);
        return;
    }
    pthread_join(t, NULL);
    if (rc != 0)
        printf("warning: warm-up evio_serve returned %d (%s)\n", rc, evio_strerror(rc));
}

/* Test cases where several threads touch one server: the ThreadSanitizer
 * run selects them with CK_INCLUDE_TAGS=threads. */
static TCase *threaded(TCase *tc)
{
    tcase_set_tags(tc, "threads");
    return tc;
}

/* Tags set once, for cases with more than one.  "slow": the cases whose
 * tests wait out timeouts or run openssl s_client (most of the suite's
 * time), which the faulted runs leave out to stay a few seconds. */
static TCase *tagged(TCase *tc, const char *tags)
{
    tcase_set_tags(tc, tags);
    return tc;
}

/* EVIO_FAULT_SEED=n: every wrapped system call and allocation goes through
 * the transparent fault profile (tests/fault.h) with seed n.  Started here,
 * before the tests fork, so each test's child starts the same schedule. */
static void start_faults(void)
{
    const char *env = getenv("EVIO_FAULT_SEED");
    if (!env || !*env)
        return;
    uint64_t seed = strtoull(env, NULL, 10);
    fault_install();
    fault_start(seed, &fault_profile_transparent);
    printf("under faults: transparent profile, fault seed %llu\n", (unsigned long long)seed);
}

int main(void)
{
    h_init_slow();
    setvbuf(stdout, NULL, _IOLBF, 0); /* tests print from forked children */
    const char *backend = evio_backend_name();
    unsigned caps = evio__backend.caps;
    printf("evio conformance suite, backend: %s%s%s (time bounds x%d)\n", backend,
           caps & EVIO__CAP_NATIVE ? ", native" : "",
           caps & EVIO__CAP_EMULATED ? ", EMULATED (compat/ layer, not the real OS API)" : "",
           h_slow);
    fflush(stdout);
    warmup();
    start_faults();
    fflush(stdout);

    char name[64];
    snprintf(name, sizeof name, "evio-%s", backend);
    Suite *s = suite_create(name);
    suite_add_tcase(s, tcase_errors());
    suite_add_tcase(s, tcase_serve());
    suite_add_tcase(s, tcase_lifecycle());
    suite_add_tcase(s, tcase_output());
    suite_add_tcase(s, threaded(tcase_wake()));
    suite_add_tcase(s, tagged(tcase_tick(), "slow"));
    suite_add_tcase(s, tcase_robust());
    suite_add_tcase(s, threaded(tcase_dial()));
    suite_add_tcase(s, threaded(tcase_loops()));
    suite_add_tcase(s, tagged(tcase_features(), "threads slow"));
    suite_add_tcase(s, tagged(tcase_translate(), "slow"));
    suite_add_tcase(s, tagged(tcase_bounds(), "threads slow"));
    suite_add_tcase(s, tcase_contract());
    suite_add_tcase(s, threaded(tcase_contract_threads()));

    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV); /* CK_NORMAL unless CK_VERBOSITY says otherwise */
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    h_cleanup_unix_paths();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
