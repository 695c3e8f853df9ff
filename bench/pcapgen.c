/*
 * pcapgen: real TCP traffic for bench/pcap.sh to capture: many short request/response
 * connections with mixed sizes, closed by either side, some reset, some refused.
 *
 *   pcapgen server -p BASE_PORT -n PORTS [-t THREADS_PER_PORT]
 *   pcapgen client -c CONNECTIONS -p BASE_PORT -n PORTS [-t THREADS] [-r RATE] [-s SEED] ADDR...
 *
 * The server listens on [::]:BASE_PORT .. BASE_PORT+PORTS-1 (dual stack), with
 * THREADS_PER_PORT threads (default 4) each accepting and serving one connection at a
 * time, until killed.  BASE_PORT+PORTS is left closed: connections to it are refused.
 *
 * The client makes CONNECTIONS connections over THREADS threads (default 32), at most
 * RATE a second if given (so that tcpdump keeps up: unpaced, 2 cores make ~175k packets
 * a second and tcpdump drops some), each to a
 * random ADDR (IPv4 or IPv6 literal, uniformly) and a random port, the lower ports more
 * often (weight 1/(i+1): a few hot endpoints, a tail of cold ones).  Each connection:
 *
 *   - sends a request: a 16-byte header (request length, response length, flags, 0,
 *     network order) and a body; 150-1350 bytes in all, 5% uploads of 2-64 KB;
 *   - the server answers with RESPONSE bytes of pseudo-random (incompressible, like TLS)
 *     data: 45% 100 B-1.5 KB, 35% 1.5-16 KB, 17% 16-64 KB, 3% 64-256 KB;
 *   - the client reads the whole response, then closes.  The server closes after the
 *     client's FIN (70%), or right after writing (30%: both FINs race, as with HTTP/1.0
 *     servers); 2% of the clients and 1% of the servers abort instead (SO_LINGER 0: RST);
 *     1% of the connections go to the closed port (SYN answered by RST).
 *
 * The client never waits for the server's FIN, so a stalled close (bench/pcap.sh drops
 * the ACKs and FINs some servers send, with nftables) never holds a thread: the kernel
 * retransmits the orphan's FIN.  Prints a summary line on stdout when done; exits 1 if
 * more than 1% of the connections failed in an unexpected way.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define F_SERVER_CLOSE_FIRST 1u
#define F_SERVER_ABORT 2u
#define HDR 16
#define DATA_SIZE (1u << 20)
#define MAX_ADDRS 64

static unsigned char *data; /* DATA_SIZE pseudo-random bytes, sent from random offsets */
static int base_port, nports;

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static uint32_t rnd_between(uint64_t *s, uint32_t lo, uint32_t hi) /* [lo, hi] */
{
	return lo + (uint32_t)(xorshift(s) % (uint64_t)(hi - lo + 1));
}

static void fill_data(void)
{
	uint64_t s = 0x9e3779b97f4a7c15ull;
	data = malloc(DATA_SIZE);
	if (!data) {
		perror("malloc");
		exit(1);
	}
	for (size_t i = 0; i < DATA_SIZE; i += 8) {
		uint64_t v = xorshift(&s);
		memcpy(data + i, &v, 8);
	}
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Writes n bytes taken from the random data, starting at a random place. */
static int write_data(int fd, size_t n, uint64_t *s)
{
	while (n > 0) {
		size_t off = xorshift(s) % (DATA_SIZE / 2);
		size_t k = n < DATA_SIZE / 2 ? n : DATA_SIZE / 2;
		if (write_all(fd, data + off, k) < 0)
			return -1;
		n -= k;
	}
	return 0;
}

/* Reads exactly n bytes (discarded unless buf is large enough and given). */
static int read_n(int fd, unsigned char *buf, size_t n)
{
	static __thread unsigned char sink[65536];
	size_t got = 0;
	while (got < n) {
		size_t want = n - got;
		unsigned char *dst = buf ? buf + got : sink;
		if (!buf && want > sizeof sink)
			want = sizeof sink;
		ssize_t r = recv(fd, dst, want, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

static void abort_close(int fd)
{
	struct linger l = {1, 0};
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
	close(fd);
}

/* ------------------------------------------------------------------ server */

struct listener {
	int fd;
	int idx;
};

static void *serve(void *arg)
{
	struct listener *l = arg;
	uint64_t s = 0x2545f4914f6cdd1dull ^ ((uint64_t)l->idx << 32) ^ (uint64_t)(uintptr_t)&s;
	for (;;) {
		int c = accept(l->fd, NULL, NULL);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			perror("accept");
			sleep(1);
			continue;
		}
		struct timeval tv = {30, 0};
		setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
		uint32_t h[4];
		if (read_n(c, (unsigned char *)h, HDR) < 0) {
			close(c);
			continue;
		}
		uint32_t req = ntohl(h[0]), resp = ntohl(h[1]), flags = ntohl(h[2]);
		if (req < HDR || read_n(c, NULL, req - HDR) < 0 || write_data(c, resp, &s) < 0) {
			close(c);
			continue;
		}
		if (flags & F_SERVER_ABORT) {
			abort_close(c);
			continue;
		}
		if (!(flags & F_SERVER_CLOSE_FIRST)) {
			unsigned char b[4096];
			while (recv(c, b, sizeof b, 0) > 0) /* until the client's FIN */
				;
		}
		close(c);
	}
	return NULL;
}

static int server(int threads)
{
	for (int i = 0; i < nports; i++) {
		int fd = socket(AF_INET6, SOCK_STREAM, 0), zero = 0, one = 1;
		if (fd < 0) {
			perror("socket");
			return 1;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
		struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(base_port + i),
					 .sin6_addr = in6addr_any};
		if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4096) < 0) {
			fprintf(stderr, "pcapgen server: port %d: %s\n", base_port + i, strerror(errno));
			return 1;
		}
		for (int t = 0; t < threads; t++) {
			struct listener *l = malloc(sizeof *l);
			pthread_t th;
			l->fd = fd;
			l->idx = i * threads + t;
			if (pthread_create(&th, NULL, serve, l) != 0) {
				perror("pthread_create");
				return 1;
			}
		}
	}
	printf("listening on %d ports from %d\n", nports, base_port);
	fflush(stdout);
	for (;;)
		pause();
}

/* ------------------------------------------------------------------ client */

static struct sockaddr_storage addrs[MAX_ADDRS];
static socklen_t addr_lens[MAX_ADDRS];
static int naddrs;
static long total_conns;
static long next_conn; /* shared counter, atomically incremented */
static double *port_cdf;
static uint64_t seed = 1;
static double rate; /* connections a second; 0: as fast as possible */
static struct timespec t_start;

struct stats {
	long ok, refused, reset, failed;
	unsigned long long bytes;
};

static uint32_t response_size(uint64_t *s)
{
	uint32_t r = rnd_between(s, 0, 99);
	if (r < 45)
		return rnd_between(s, 100, 1500);
	if (r < 80)
		return rnd_between(s, 1501, 16384);
	if (r < 97)
		return rnd_between(s, 16385, 65536);
	return rnd_between(s, 65537, 262144);
}

static uint32_t request_size(uint64_t *s)
{
	if (rnd_between(s, 0, 99) < 5)
		return rnd_between(s, 2048, 65536);
	return rnd_between(s, 150, 1350);
}

static int pick_port(uint64_t *s)
{
	double u = (double)(xorshift(s) >> 11) / (double)(1ull << 53);
	for (int i = 0; i < nports; i++)
		if (u < port_cdf[i])
			return base_port + i;
	return base_port + nports - 1;
}

static void *client_thread(void *arg)
{
	struct stats *st = arg;
	uint64_t s = seed * 0x9e3779b97f4a7c15ull + (uint64_t)(uintptr_t)st;
	for (int i = 0; i < 16; i++)
		xorshift(&s);
	for (;;) {
		long n = __atomic_fetch_add(&next_conn, 1, __ATOMIC_RELAXED);
		if (n >= total_conns)
			break;
		if (rate > 0) { /* connection n starts no earlier than n / rate seconds in */
			double due = (double)n / rate;
			struct timespec now;
			clock_gettime(CLOCK_MONOTONIC, &now);
			double el = (double)(now.tv_sec - t_start.tv_sec) + (now.tv_nsec - t_start.tv_nsec) / 1e9;
			if (due > el) {
				double w = due - el;
				struct timespec ts = {(time_t)w, (long)((w - (double)(time_t)w) * 1e9)};
				nanosleep(&ts, NULL);
			}
		}
		int ai = (int)(xorshift(&s) % (uint64_t)naddrs);
		struct sockaddr_storage a = addrs[ai];
		int refused = rnd_between(&s, 0, 99) < 1;
		int port = refused ? base_port + nports : pick_port(&s);
		if (a.ss_family == AF_INET)
			((struct sockaddr_in *)&a)->sin_port = htons(port);
		else
			((struct sockaddr_in6 *)&a)->sin6_port = htons(port);
		int fd = socket(a.ss_family, SOCK_STREAM, 0);
		if (fd < 0) {
			st->failed++;
			continue;
		}
		struct timeval tv = {20, 0};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
		if (connect(fd, (struct sockaddr *)&a, addr_lens[ai]) < 0) {
			if (errno == ECONNREFUSED && refused)
				st->refused++;
			else
				st->failed++;
			close(fd);
			continue;
		}
		uint32_t req = request_size(&s), resp = response_size(&s), flags = 0;
		uint32_t r = rnd_between(&s, 0, 99);
		if (r < 1)
			flags = F_SERVER_ABORT;
		else if (r < 31)
			flags = F_SERVER_CLOSE_FIRST;
		int client_abort = rnd_between(&s, 0, 99) < 2;
		uint32_t h[4] = {htonl(req), htonl(resp), htonl(flags), 0};
		if (write_all(fd, (unsigned char *)h, HDR) < 0 || write_data(fd, req - HDR, &s) < 0 ||
		    read_n(fd, NULL, resp) < 0) {
			if (errno == ECONNRESET || errno == EPIPE)
				st->reset++;
			else
				st->failed++;
			close(fd);
			continue;
		}
		st->bytes += req + resp;
		if (client_abort) {
			abort_close(fd);
			st->reset++;
		} else {
			close(fd);
			st->ok++;
		}
	}
	return NULL;
}

static int client(int threads)
{
	double sum = 0;
	port_cdf = calloc((size_t)nports, sizeof *port_cdf);
	for (int i = 0; i < nports; i++)
		sum += 1.0 / (i + 1);
	double acc = 0;
	for (int i = 0; i < nports; i++) {
		acc += 1.0 / (i + 1) / sum;
		port_cdf[i] = acc;
	}
	clock_gettime(CLOCK_MONOTONIC, &t_start);
	pthread_t *th = calloc((size_t)threads, sizeof *th);
	struct stats *st = calloc((size_t)threads, sizeof *st);
	for (int t = 0; t < threads; t++)
		if (pthread_create(&th[t], NULL, client_thread, &st[t]) != 0) {
			perror("pthread_create");
			return 1;
		}
	struct stats sum_st = {0};
	for (int t = 0; t < threads; t++) {
		pthread_join(th[t], NULL);
		sum_st.ok += st[t].ok;
		sum_st.refused += st[t].refused;
		sum_st.reset += st[t].reset;
		sum_st.failed += st[t].failed;
		sum_st.bytes += st[t].bytes;
	}
	printf("connections %ld: closed %ld, reset %ld, refused %ld, failed %ld; %llu payload bytes\n",
	       total_conns, sum_st.ok, sum_st.reset, sum_st.refused, sum_st.failed, sum_st.bytes);
	return sum_st.failed * 100 > total_conns ? 1 : 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: pcapgen server -p BASE_PORT -n PORTS [-t THREADS_PER_PORT]\n"
			"       pcapgen client -c CONNECTIONS -p BASE_PORT -n PORTS [-t THREADS] [-r RATE] [-s SEED] ADDR...\n");
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	int is_server = strcmp(argv[1], "server") == 0;
	if (!is_server && strcmp(argv[1], "client") != 0)
		usage();
	int threads = is_server ? 4 : 32, opt;
	optind = 2;
	while ((opt = getopt(argc, argv, "p:n:t:c:s:r:")) != -1) {
		switch (opt) {
		case 'p': base_port = atoi(optarg); break;
		case 'n': nports = atoi(optarg); break;
		case 't': threads = atoi(optarg); break;
		case 'c': total_conns = atol(optarg); break;
		case 'r': rate = atof(optarg); break;
		case 's': seed = strtoull(optarg, NULL, 10) + 1; break;
		default: usage();
		}
	}
	if (base_port <= 0 || nports <= 0 || base_port + nports > 65535 || threads <= 0)
		usage();
	signal(SIGPIPE, SIG_IGN);
	fill_data();
	if (is_server)
		return server(threads);
	if (total_conns <= 0 || optind >= argc)
		usage();
	for (int i = optind; i < argc && naddrs < MAX_ADDRS; i++, naddrs++) {
		struct sockaddr_in *a4 = (struct sockaddr_in *)&addrs[naddrs];
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&addrs[naddrs];
		if (inet_pton(AF_INET, argv[i], &a4->sin_addr) == 1) {
			a4->sin_family = AF_INET;
			addr_lens[naddrs] = sizeof *a4;
		} else if (inet_pton(AF_INET6, argv[i], &a6->sin6_addr) == 1) {
			a6->sin6_family = AF_INET6;
			addr_lens[naddrs] = sizeof *a6;
		} else {
			fprintf(stderr, "pcapgen: not an address: %s\n", argv[i]);
			return 2;
		}
	}
	return client(threads);
}
