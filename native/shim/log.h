/* Monitor log lines in logrus text format, written to the bundle's log FIFO (best effort). */
#ifndef TSRT_LOG_H
#define TSRT_LOG_H

enum { LV_DEBUG, LV_INFO, LV_WARN, LV_ERROR };

/* Opens <bundle>/log O_WRONLY|O_NONBLOCK; without a reader nothing is logged. */
void log_open(const char *bundle, const char *id, int debug);
void log_close(void);
void logm(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
