/*
 * escape.h — text into the documents outpost writes. Every JSON document (status, alerts,
 * tombstones, north's listings) and every Prometheus text file carries text outpost did not
 * write: the site's name and paths from the operator's file, a model file's name, HDF5's and
 * the configuration's error messages, key file names north finds. One escaper per format for
 * all of them, so that a quote, a newline or a stray byte in any of them cannot make a document
 * unreadable (status --json, an alert north, node_exporter's textfile collector).
 */
#ifndef OP_UPLINK_ESCAPE_H
#define OP_UPLINK_ESCAPE_H
#include <stddef.h>

/*
 * in as the inside of a JSON string (RFC 8259): '"' and '\' escaped, control characters and
 * DEL as \u00XX, well-formed UTF-8 kept as it is, any other byte (a stray continuation byte,
 * an overlong or cut sequence, a surrogate) as \ufffd. Cut to fit cap bytes with its NUL at a
 * whole character or escape, never inside one. Returns the length written (cap 0: nothing).
 */
size_t op_json_escape(char *out, size_t cap, const char *in);

/*
 * in as a Prometheus label value (text exposition format): '\', '"' and the line feed escaped
 * (\\, \", \n), well-formed UTF-8 kept, any other byte as U+FFFD (the format has no escape for
 * it and must be UTF-8). Cut as op_json_escape.
 */
size_t op_prom_escape(char *out, size_t cap, const char *in);

/* The offset of the first byte of s that is not part of well-formed UTF-8, SIZE_MAX if none. */
size_t op_utf8_invalid_at(const char *s);

/* s made fit for a line of its own (the journal, a report line, an HDF5 attribute declared
 * UTF-8), in place: control characters, DEL and bytes that are not well-formed UTF-8 become
 * '?'. Text from a file or the wire that a newline in it would let forge a line. */
void op_text_printable(char *s);

#endif
