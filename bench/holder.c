/*
 * holder: open many loopback TCP connections and hold them until killed.
 *
 *   holder -n CONNECTIONS [-c PER_PROCESS] [-p BASE_PORT] [-r READY_FILE]
 *
 * Every connection is held at both ends (the client socket and the accepted
 * server socket), so CONNECTIONS connections are 2*CONNECTIONS ESTABLISHED
 * sockets.  The hard RLIMIT_NOFILE caps one process, so the work is spread
 * over ceil(CONNECTIONS / PER_PROCESS) child processes.  Child i listens on
 * 127.0.0.1:(BASE_PORT + i) and connects to itself; each destination gets its
 * own ephemeral-port space (the kernel only needs the 4-tuple to be unique),
 * so PER_PROCESS must stay below the size of ip_local_port_range.
 *
 * The parent waits for every child to report, prints "ready SOCKETS" on
 * stdout (and writes it to READY_FILE, if given), then waits for SIGTERM or
 * SIGINT, kills the children and exits.  Children die with the parent
 * (PR_SET_PDEATHSIG), whatever kills it.  Every socket has SO_LINGER 0, so
 * teardown is a reset: nothing lingers as an orphan, in FIN-WAIT or TIME-WAIT.
 *
 * Run it inside a dedicated network namespace (bench/run.sh does).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define BATCH 256

static void die(const char *what, int child, int port)
{
	fprintf(stderr, "holder[%d] port %d: %s: %s\n", child, port, what, strerror(errno));
	_exit(1);
}

static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Child: listen on port, make conns connections to it, report, hold. */
static void child(int idx, int port, long conns, int report_fd, pid_t parent)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
		die("prctl", idx, port);
	if (getppid() != parent) /* parent already gone */
		_exit(1);
	raise_nofile();

	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	if ((rlim_t)(2 * conns + 16) > rl.rlim_cur) {
		errno = EMFILE;
		die("RLIMIT_NOFILE too low for -c", idx, port);
	}

	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		die("socket", idx, port);
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0)
		die("bind", idx, port);
	if (listen(lfd, 4096) < 0)
		die("listen", idx, port);

	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	long done = 0;
	while (done < conns) {
		int n = conns - done < BATCH ? (int)(conns - done) : BATCH;
		for (int i = 0; i < n; i++) {
			int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (c < 0)
				die("socket (client)", idx, port);
			setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
			/* Loopback: the handshake completes inside connect(). */
			if (connect(c, (struct sockaddr *)&sa, sizeof sa) < 0)
				die("connect", idx, port);
		}
		for (int i = 0; i < n; i++) {
			int s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (s < 0)
				die("accept", idx, port);
			setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		}
		done += n;
	}

	char msg[64];
	int len = snprintf(msg, sizeof msg, "%ld\n", done);
	if (write(report_fd, msg, len) != len)
		die("write report", idx, port);
	close(report_fd);
	for (;;)
		pause();
}

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv)
{
	long conns = 0, per = 9900;
	int base = 20000;
	const char *ready_file = NULL;
	int opt;
	while ((opt = getopt(argc, argv, "n:c:p:r:")) != -1) {
		switch (opt) {
		case 'n': conns = atol(optarg); break;
		case 'c': per = atol(optarg); break;
		case 'p': base = atoi(optarg); break;
		case 'r': ready_file = optarg; break;
		default:
			fprintf(stderr, "usage: %s -n CONNECTIONS [-c PER_PROCESS] [-p BASE_PORT] [-r READY_FILE]\n", argv[0]);
			return 2;
		}
	}
	if (conns <= 0 || per <= 0) {
		fprintf(stderr, "holder: -n and -c must be positive\n");
		return 2;
	}
	int procs = (int)((conns + per - 1) / per);
	if (base + procs > 65535) {
		fprintf(stderr, "holder: too many processes for base port %d\n", base);
		return 2;
	}
	raise_nofile();

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	struct sigaction act = { .sa_handler = on_signal };
	sigaction(SIGTERM, &act, NULL);
	sigaction(SIGINT, &act, NULL);
	sigaction(SIGHUP, &act, NULL);
	signal(SIGPIPE, SIG_IGN);

	pid_t self = getpid();
	pid_t *pids = calloc(procs, sizeof *pids);
	int *fds = calloc(procs, sizeof *fds);
	if (!pids || !fds)
		return 1;

	long left = conns;
	for (int i = 0; i < procs; i++) {
		long mine = left < per ? left : per;
		left -= mine;
		int p[2];
		if (pipe2(p, O_CLOEXEC) < 0) {
			perror("holder: pipe");
			goto fail;
		}
		pid_t pid = fork();
		if (pid < 0) {
			perror("holder: fork");
			goto fail;
		}
		if (pid == 0) {
			close(p[0]);
			for (int j = 0; j < i; j++)
				close(fds[j]);
			child(i, base + i, mine, p[1], self);
		}
		close(p[1]);
		pids[i] = pid;
		fds[i] = p[0];
	}

	long total = 0;
	for (int i = 0; i < procs && !stop; i++) {
		char buf[64] = { 0 };
		ssize_t n;
		do
			n = read(fds[i], buf, sizeof buf - 1);
		while (n < 0 && errno == EINTR && !stop);
		if (n <= 0) {
			fprintf(stderr, "holder: child %d (port %d) failed\n", i, base + i);
			goto fail;
		}
		total += atol(buf);
		close(fds[i]);
	}
	if (stop)
		goto fail;

	printf("ready %ld sockets in %d processes (%ld connections + %d listeners)\n",
	       2 * total, procs, total, procs);
	fflush(stdout);
	if (ready_file) {
		FILE *f = fopen(ready_file, "w");
		if (f) {
			fprintf(f, "%ld\n", 2 * total);
			fclose(f);
		}
	}

	while (!stop)
		pause();
	for (int i = 0; i < procs; i++)
		kill(pids[i], SIGKILL);
	for (int i = 0; i < procs; i++)
		waitpid(pids[i], NULL, 0);
	return 0;

fail:
	for (int i = 0; i < procs; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGKILL);
	for (int i = 0; i < procs; i++)
		if (pids[i] > 0)
			waitpid(pids[i], NULL, 0);
	return 1;
}
