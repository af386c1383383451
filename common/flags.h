/* flags.h - command-line flags shared by every speedy daemon and tool.
 *
 * A daemon describes its flags in a table; spy_flags_parse fills the values.
 * Accepted spellings, so both the original C (--name=value) and the original
 * Go daemons (-name=value, -name value) keep working:
 *     --name=value  --name value  -name=value  -name value
 * Boolean flags also accept a bare "-D" / "--D" (true) and =true/false/1/0.
 * "--help" and "-help" ask for usage. Arguments that are not flags are
 * returned to the caller as positional arguments (for tools with commands).
 *
 * Errors are one line ("bad value for --port: 'x' is not a number") so the
 * daemon prints it and exits non-zero at once. Not thread-safe; call at start. */
#ifndef SPY_FLAGS_H
#define SPY_FLAGS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum spy_flag_type {
    SPY_FLAG_STRING, /* value: const char ** (points into argv or at 'def') */
    SPY_FLAG_INT,    /* value: long long *, checked against [min, max] */
    SPY_FLAG_SIZE,   /* value: uint64_t *, bytes with K/M/G/T suffix (1024-based) */
    SPY_FLAG_BOOL,   /* value: int *, 0 or 1 */
};

struct spy_flag {
    const char *name; /* without dashes: "port", "dh", "D" */
    enum spy_flag_type type;
    void *value;
    const char *def;    /* default as text; NULL means no default (value untouched) */
    long long min, max; /* INT and SIZE bounds, inclusive; ignored when min == max == 0 */
    int required;       /* must be given on the command line */
    const char *help;   /* one line */
};

enum spy_flags_result {
    SPY_FLAGS_OK = 0,
    SPY_FLAGS_HELP = 1,   /* --help was given: print usage, exit 0 */
    SPY_FLAGS_ERROR = -1, /* 'err' holds the one-line reason */
};

/* Parses argv[1..argc-1] against 'flags' (defaults applied first). Non-flag
 * arguments are moved, in order, to the front of argv after argv[0], and their
 * count is stored in *npositional (when npositional is NULL they are an error).
 * A lone "--" ends flag parsing. */
int spy_flags_parse(struct spy_flag *flags, size_t nflags, int argc, char **argv, int *npositional,
                    char *err, size_t errlen);

/* Prints "usage: prog ..." with one line per flag and its default. */
void spy_flags_usage(FILE *out, const char *prog, const char *summary, const struct spy_flag *flags,
                     size_t nflags);

/* Parses "123", "64K", "16M", "2G", "1T" (case-insensitive, optional "B" or
 * "iB") into bytes. Returns 0, or -1 on a malformed or overflowing value. */
int spy_parse_size(const char *text, uint64_t *out);

/* Parses a whole decimal integer. Returns 0, or -1 if malformed or overflowing. */
int spy_parse_int(const char *text, long long *out);

#endif
