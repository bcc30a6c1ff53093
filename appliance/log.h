/*
 * log.h — the appliance's one way to say something to the operator.
 *
 * Only appliance/ logs (library modules return errors). Each line carries the stage name and,
 * where it has them, structured fields (STREAM=, SEQUENCE=, FILE=, REASON=). Under systemd
 * (JOURNAL_STREAM set) lines go to the journal with those fields; otherwise to stderr as
 * "outpost[stage] LEVEL: message". Logging must never block the data path for long and never
 * fail loudly: a log line that can't be written is dropped. Each call site is rate-limited
 * (log.c), so a flood of bad input costs a few lines and a count, never a full disk.
 */
#ifndef OP_APPLIANCE_LOG_H
#define OP_APPLIANCE_LOG_H
#include <stdint.h>

enum op_log_level { OP_LOG_ERR = 3, OP_LOG_WARNING = 4, OP_LOG_INFO = 6, OP_LOG_DEBUG = 7 };

void op_log_init(const char *stage, const char *level_name);
void op_log_set_level(const char *level_name);
void op_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* With structured fields, "STREAM=3\nSEQUENCE=42" (journal fields; appended in braces on stderr). */
void op_logf(int level, const char *fields, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Like op_logf, rate-limited by key (a string that lives on, compared by address) instead of by
 * call site: one site logging several kinds of thing (rejections, by reason) keeps a budget
 * per kind, so a flood of one kind cannot hide the others. */
void op_logk(int level, const char *key, const char *fields, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Rate limit per call site (or key): burst lines per window_ns (default 20 per 10 s). */
void op_log_set_rate(uint32_t burst, uint64_t window_ns);
/* Say how many lines were held back at each site whose window is over and that has not logged
 * since (a flood that stopped): called periodically (stage reports, the supervisor's loop). */
void op_log_flush(void);

#define op_err(...) op_log(OP_LOG_ERR, __VA_ARGS__)
#define op_warn(...) op_log(OP_LOG_WARNING, __VA_ARGS__)
#define op_info(...) op_log(OP_LOG_INFO, __VA_ARGS__)
#define op_debug(...) op_log(OP_LOG_DEBUG, __VA_ARGS__)

#endif
