#include "common/flags.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int spy_parse_int(const char *text, long long *out)
{
    if (text == NULL || *text == '\0')
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0' || isspace((unsigned char)text[0]))
        return -1;
    *out = v;
    return 0;
}

int spy_parse_size(const char *text, uint64_t *out)
{
    if (text == NULL || !isdigit((unsigned char)text[0]))
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0)
        return -1;
    unsigned shift = 0;
    switch (toupper((unsigned char)*end)) {
    case '\0':
        break;
    case 'K':
        shift = 10;
        break;
    case 'M':
        shift = 20;
        break;
    case 'G':
        shift = 30;
        break;
    case 'T':
        shift = 40;
        break;
    case 'B':
        if (end[1] != '\0')
            return -1;
        *out = v;
        return 0;
    default:
        return -1;
    }
    if (shift != 0) {
        end++;
        if (strcasecmp(end, "") != 0 && strcasecmp(end, "B") != 0 && strcasecmp(end, "iB") != 0)
            return -1;
    }
    if (shift != 0 && v > (UINT64_MAX >> shift))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

/* set_flag_value: converts 'text' for one flag, checking its bounds; on
 * failure writes the one-line reason into err. */
static int set_flag_value(const struct spy_flag *f, const char *text, char *err, size_t errlen)
{
    switch (f->type) {
    case SPY_FLAG_STRING:
        *(const char **)f->value = text;
        return 0;
    case SPY_FLAG_BOOL:
        if (strcmp(text, "1") == 0 || strcasecmp(text, "true") == 0) {
            *(int *)f->value = 1;
        } else if (strcmp(text, "0") == 0 || strcasecmp(text, "false") == 0) {
            *(int *)f->value = 0;
        } else {
            snprintf(err, errlen, "bad value for --%s: '%s' is not true/false/1/0", f->name, text);
            return -1;
        }
        return 0;
    case SPY_FLAG_INT: {
        long long v;
        if (spy_parse_int(text, &v) != 0) {
            snprintf(err, errlen, "bad value for --%s: '%s' is not a whole number", f->name, text);
            return -1;
        }
        if ((f->min != 0 || f->max != 0) && (v < f->min || v > f->max)) {
            snprintf(err, errlen, "bad value for --%s: %lld is outside %lld..%lld", f->name, v,
                     f->min, f->max);
            return -1;
        }
        *(long long *)f->value = v;
        return 0;
    }
    case SPY_FLAG_SIZE: {
        uint64_t v;
        if (spy_parse_size(text, &v) != 0) {
            snprintf(err, errlen, "bad value for --%s: '%s' is not a size (e.g. 64M, 2G)", f->name,
                     text);
            return -1;
        }
        if ((f->min != 0 || f->max != 0) && (v < (uint64_t)f->min || v > (uint64_t)f->max)) {
            snprintf(err, errlen, "bad value for --%s: %s is outside %lld..%lld bytes", f->name,
                     text, f->min, f->max);
            return -1;
        }
        *(uint64_t *)f->value = v;
        return 0;
    }
    }
    snprintf(err, errlen, "internal error: flag --%s has no type", f->name);
    return -1;
}

static struct spy_flag *find_flag(struct spy_flag *flags, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(flags[i].name) == len && strncmp(flags[i].name, name, len) == 0)
            return &flags[i];
    return NULL;
}

int spy_flags_parse(struct spy_flag *flags, size_t nflags, int argc, char **argv, int *npositional,
                    char *err, size_t errlen)
{
    unsigned char seen[nflags > 0 ? nflags : 1];
    memset(seen, 0, sizeof(seen));
    for (size_t i = 0; i < nflags; i++)
        if (flags[i].def != NULL && set_flag_value(&flags[i], flags[i].def, err, errlen) != 0)
            return SPY_FLAGS_ERROR;

    int npos = 0, only_positional = 0;
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i];
        if (only_positional || arg[0] != '-' || arg[1] == '\0') {
            argv[1 + npos++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            only_positional = 1;
            continue;
        }
        const char *name = arg + (arg[1] == '-' ? 2 : 1);
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        if ((len == 4 && strncmp(name, "help", 4) == 0) && eq == NULL)
            return SPY_FLAGS_HELP;
        struct spy_flag *f = find_flag(flags, nflags, name, len);
        if (f == NULL) {
            snprintf(err, errlen, "unknown flag '%.*s' (see --help)", (int)(len + (name - arg)),
                     arg);
            return SPY_FLAGS_ERROR;
        }
        const char *value;
        if (eq != NULL) {
            value = eq + 1;
        } else if (f->type == SPY_FLAG_BOOL) {
            value = "true";
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            snprintf(err, errlen, "flag --%s needs a value", f->name);
            return SPY_FLAGS_ERROR;
        }
        if (set_flag_value(f, value, err, errlen) != 0)
            return SPY_FLAGS_ERROR;
        seen[f - flags] = 1;
    }
    for (size_t i = 0; i < nflags; i++) {
        if (flags[i].required && !seen[i]) {
            snprintf(err, errlen, "missing required flag --%s (%s)", flags[i].name, flags[i].help);
            return SPY_FLAGS_ERROR;
        }
    }
    if (npositional != NULL) {
        *npositional = npos;
    } else if (npos > 0) {
        snprintf(err, errlen, "unexpected argument '%s' (flags look like --name=value)", argv[1]);
        return SPY_FLAGS_ERROR;
    }
    return SPY_FLAGS_OK;
}

void spy_flags_usage(FILE *out, const char *prog, const char *summary, const struct spy_flag *flags,
                     size_t nflags)
{
    fprintf(out, "usage: %s [flags]\n%s\n\nflags (also accepted as -name=value):\n", prog, summary);
    for (size_t i = 0; i < nflags; i++) {
        const struct spy_flag *f = &flags[i];
        const char *kind = f->type == SPY_FLAG_BOOL   ? "=<true|false>"
                           : f->type == SPY_FLAG_SIZE ? "=<bytes, K/M/G suffix>"
                           : f->type == SPY_FLAG_INT  ? "=<number>"
                                                      : "=<text>";
        fprintf(out, "  --%s%s\n        %s", f->name, kind, f->help);
        if (f->required)
            fprintf(out, " (required)");
        else if (f->def != NULL && f->def[0] != '\0')
            fprintf(out, " (default %s)", f->def);
        fprintf(out, "\n");
    }
}
