/* http_phr.h - declarations for the picohttpparser functions that Debian's
 * libh2o-evloop.so (h2o 2.2.5) exports without shipping a header.
 *
 * This is the one place they are declared; only registry/http_parse.c calls
 * them. The layouts below match the library's build (checked against the
 * disassembly of phr_decode_chunked: the decoder's state byte is at offset
 * 10, after an 8-byte size and two chars); a static assert guards the size.
 *
 * phr_parse_request returns the length of the request head when it is
 * complete, -2 when more bytes are needed, -1 when the bytes are malformed or
 * there are more header lines than *num_headers on entry. last_len is the
 * length already known to be incomplete (an optimisation only; 0 is safe).
 * The pointers it fills point into buf. It accepts only "HTTP/1.<digit>".
 *
 * phr_decode_chunked decodes in place: on return *bufsz is the number of
 * decoded body bytes now at buf[0..*bufsz). It returns -2 when the body needs
 * more bytes (it has consumed every byte it was given), -1 on malformed
 * framing, or, once the terminating chunk (and, with consume_trailer set, the
 * trailer section) has been seen, the number of bytes after the body, which
 * it has moved to buf[*bufsz .. *bufsz + ret). Zero-fill the decoder first. */
#ifndef SPY_HTTP_PHR_H
#define SPY_HTTP_PHR_H

#include <stddef.h>
#include <sys/types.h>

struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

struct phr_chunked_decoder {
    size_t bytes_left_in_chunk; /* 00-07: bytes left in the current chunk */
    char consume_trailer;       /* 08: also consume the trailer section */
    char _hex_count;            /* 09 */
    char _state;                /* 10 */
};
_Static_assert(sizeof(struct phr_chunked_decoder) == 16, "libh2o-evloop's layout");

int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len,
                      const char **path, size_t *path_len, int *minor_version,
                      struct phr_header *headers, size_t *num_headers, size_t last_len);

ssize_t phr_decode_chunked(struct phr_chunked_decoder *decoder, char *buf, size_t *bufsz);

#endif
