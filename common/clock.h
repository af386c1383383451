/* clock.h - the monotonic clock helpers every thread that waits uses.
 *
 * Deadlines and timeouts in speedy are measured on CLOCK_MONOTONIC, never on
 * the wall clock, so a clock step cannot cut or stretch a wait. Condition
 * variables that wait with a deadline must be initialised with
 * spy_cond_init_monotonic so pthread_cond_timedwait reads the same clock.
 * All functions are thread-safe. */
#ifndef SPY_CLOCK_H
#define SPY_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* Milliseconds on CLOCK_MONOTONIC (an arbitrary origin). */
int64_t spy_clock_ms(void);

/* The CLOCK_MONOTONIC time 'ms' milliseconds from now, for
 * pthread_cond_timedwait on a condvar made by spy_cond_init_monotonic. */
struct timespec spy_clock_deadline(int64_t ms);

/* Initialises cond to time its waits on CLOCK_MONOTONIC. Returns 0 or an
 * errno value. */
int spy_cond_init_monotonic(pthread_cond_t *cond);

#endif
