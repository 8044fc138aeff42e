/* The monitor's process setup, poll loop, reaping and exit. */
#include "monitor.h"
#include "console.h"
#include "control.h"
#include "copy.h"
#include "handoff.h"
#include "log.h"
#include "logger.h"
#include "oom.h"
#include "proxy.h"
#include "spawn.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS 20

static const struct monitor_cfg *cfg;
static int sig_fd = -1;
static struct pollfd *pfds;
static size_t npfds_cap;

static void unlink_socket(void)
{
	struct stat st;
	/* only the socket file we bound: a newer monitor may own the path by now */
	if (stat(cfg->sock_path, &st) == 0 && st.st_dev == cfg->sock_dev && st.st_ino == cfg->sock_ino)
		(void)unlink(cfg->sock_path);
}

void monitor_exit(int code)
{
	unlink_socket();
	console_release_all(); /* unlinks the console sockets still listening */
	/* e.g. the daemon's answer to containerd's Shutdown, sent just before its shutdown frame */
	proxy_drain(200);
	proxy_close_all();
	control_close();
	spawn_release_all();
	logger_release_all();
	oom_release_all();
	copy_release_all();
	handoff_release_all();
	close(cfg->listen_fd);
	if (sig_fd >= 0)
		close(sig_fd);
	free(pfds);
	logm(LV_INFO, "monitor exiting");
	log_close();
	exit(code);
}

static void reap(void)
{
	int drained = 0;
	for (;;) {
		int st;
		pid_t pid = wait4(-1, &st, WNOHANG, NULL);
		if (pid < 0 && errno == EINTR)
			continue;
		if (pid <= 0)
			return;
		int status;
		if (WIFEXITED(st))
			status = WEXITSTATUS(st);
		else if (WIFSIGNALED(st))
			status = 128 + WTERMSIG(st);
		else
			continue;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		if (!drained) {
			/* an OOM kill is reported before the exit it caused */
			oom_check_all();
			/* what the process wrote to its tty goes out before the daemon hears of the exit */
			console_drain_all();
			drained = 1;
		}
		logger_reaped(pid);
		control_reaped(pid, status, &ts);
	}
}

/* SIGUSR1: the monitor's tables in one log line, for an operator looking at a stuck container. Its
 * children are the kernel's list (a subreaper's adopted processes included). */
static void log_tables(void)
{
	char kids[1024] = "";
	char path[64];
	snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)getpid());
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, kids, sizeof kids - 1);
		kids[n > 0 ? n : 0] = '\0';
		close(fd);
		if (n == (ssize_t)sizeof kids - 1)
			snprintf(kids + sizeof kids - 5, 5, "...");
	}
	size_t len = strlen(kids);
	if (len > 0 && kids[len - 1] == ' ')
		kids[len - 1] = '\0';
	logm(LV_INFO, "tables (SIGUSR1): daemon control connection %s (number %llu), events unacknowledged %zu, "
	     "containerd connections %zu, io copies %zu, consoles %zu, oom watches %zu, exec servers %zu, children [%s]",
	     control_conn() ? "up" : "down", (unsigned long long)control_conn(), control_events_unacked(),
	     proxy_count(), copy_count(), console_count(), oom_slots() /* one slot per watch */, handoff_count(), kids);
}

static void handle_signals(void)
{
	struct signalfd_siginfo si;
	int chld = 0, term = 0, usr1 = 0;
	ssize_t n;
	while ((n = read(sig_fd, &si, sizeof si)) == (ssize_t)sizeof si) {
		if (si.ssi_signo == SIGCHLD)
			chld = 1;
		else if (si.ssi_signo == SIGUSR1)
			usr1 = 1;
		else
			term = (int)si.ssi_signo;
	}
	if (usr1)
		log_tables();
	if (chld)
		reap();
	if (term) {
		logm(LV_INFO, "terminating on signal %d", term);
		monitor_exit(0);
	}
}

static int setup(void)
{
	if (setpgid(0, 0) < 0 && errno != EPERM)
		return -1;
	if (child_devnull_stdio() < 0)
		return -1;
	/* whatever else the caller of start left open (containerd passes only 0-2) is not ours */
	close_fds_from(3, cfg->listen_fd);
	log_open(cfg->bundle, cfg->id, cfg->debug);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
		logm(LV_ERROR, "PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
		return -1;
	}
	struct sigaction ign;
	memset(&ign, 0, sizeof ign);
	ign.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &ign, NULL) < 0 || sigaction(SIGHUP, &ign, NULL) < 0)
		return -1;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -1;
	sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sig_fd < 0 || set_nonblock(cfg->listen_fd, 1) < 0) {
		logm(LV_ERROR, "signalfd: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static int64_t earliest(int64_t a, int64_t b)
{
	if (a < 0)
		return b;
	return b < 0 || a < b ? a : b;
}

void monitor_run(const struct monitor_cfg *c)
{
	cfg = c;
	if (setup() < 0)
		_exit(1);
	control_init(cfg);
	proxy_init(cfg);
	logm(LV_INFO, "monitor started on %s (%s)", cfg->shim_address, cfg->grpc ? "gRPC" : "ttrpc");
	if (cfg->transport_note)
		logm(LV_WARN, "%s", cfg->transport_note);
	/* children exited before the signalfd existed are reaped here */
	reap();

	int64_t next_tick = 0, accept_resume = 0;
	for (;;) {
		int64_t now = mono_ms();
		int64_t deadline = -1;
		if (control_wants_tick() || proxy_wants_tick()) {
			if (now >= next_tick) {
				control_tick(now);
				proxy_tick();
				next_tick = now + TICK_MS;
			}
			if (control_wants_tick() || proxy_wants_tick())
				deadline = next_tick;
		}
		int accepting = now >= accept_resume;
		if (!accepting && (deadline < 0 || accept_resume < deadline))
			deadline = accept_resume;
		deadline = earliest(deadline, console_deadline());
		deadline = earliest(deadline, logger_deadline());

		size_t np = proxy_slots(), nc = console_slots(), nl = logger_slots(), no = oom_slots();
		size_t ny = copy_slots(), nh = handoff_slots();
		size_t n = 3 + np + nc + nl + no + ny + nh;
		if (n > npfds_cap) {
			npfds_cap = n * 2;
			pfds = xrealloc(pfds, npfds_cap * sizeof *pfds);
		}
		struct pollfd *cons = pfds + 3 + np, *logs = cons + nc, *ooms = logs + nl, *cps = ooms + no;
		struct pollfd *chans = cps + ny;
		pfds[0] = (struct pollfd){ .fd = accepting ? cfg->listen_fd : -1, .events = POLLIN };
		pfds[1] = (struct pollfd){ .fd = sig_fd, .events = POLLIN };
		pfds[2] = (struct pollfd){ .fd = control_fd(), .events = control_events() };
		proxy_fill(pfds + 3);
		console_fill(cons);
		logger_fill(logs);
		oom_fill(ooms);
		copy_fill(cps);
		handoff_fill(chans);
		for (size_t i = 0; i < n; i++)
			pfds[i].revents = 0;

		int timeout = -1;
		if (deadline >= 0) {
			int64_t left = deadline - mono_ms();
			timeout = left < 0 ? 0 : (int)left;
		}
		int rc = poll(pfds, n, timeout);
		if (rc < 0) {
			if (errno != EINTR) {
				logm(LV_ERROR, "poll: %s", strerror(errno));
				struct timespec pause = { 0, 10 * 1000 * 1000 };
				nanosleep(&pause, NULL);
			}
			continue;
		}
		/* first: requests handled below may add or remove consoles, loggers, OOM watches and copies */
		console_dispatch(cons);
		logger_dispatch(logs);
		oom_dispatch(ooms);
		copy_dispatch(cps);
		handoff_dispatch(chans);
		now = mono_ms();
		console_timers(now);
		logger_timers(now);
		if (pfds[1].revents)
			handle_signals();
		if (pfds[2].revents && pfds[2].fd == control_fd())
			control_handle(pfds[2].revents);
		proxy_dispatch(pfds + 3);
		if (pfds[0].revents) {
			int pause_ms = proxy_accept(cfg->listen_fd);
			if (pause_ms)
				accept_resume = mono_ms() + pause_ms;
		}
	}
}
