/*
 * floor: the kernel's floor for "count TCP sockets per state".
 *
 *   floor [STATE_MASK [FAMILIES]]
 *
 * Opens one NETLINK_SOCK_DIAG socket, dumps IPv4 then IPv6 TCP sockets
 * (inet_diag_req_v2, idiag_states = bits 1..11, i.e. 0xffe: every state)
 * with a 64 KiB receive buffer, counts the messages per state and prints the
 * counts.  Nothing else: no address decoding, no allocation per socket.  Any
 * tool that reports per-state counts from sock_diag does at least this much.
 *
 * STATE_MASK (hex, e.g. 0xffc = all but ESTABLISHED) replaces 0xffe; it shows
 * what a dump costs when the kernel skips a state before building messages.
 * FAMILIES is 4, 6 or 46 (the default): which dumps to make.
 */
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *names[] = {
	"?", "ESTABLISHED", "SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2",
	"TIME-WAIT", "CLOSE", "CLOSE-WAIT", "LAST-ACK", "LISTEN", "CLOSING",
	"NEW-SYN-RECV", "BOUND-INACTIVE",
};
#define NSTATES (sizeof names / sizeof names[0])

static unsigned long counts[256];
static char buf[65536] __attribute__((aligned(8)));

static int dump(int fd, int family, unsigned states)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 req;
	} msg;
	memset(&msg, 0, sizeof msg);
	msg.nlh.nlmsg_len = sizeof msg;
	msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	msg.nlh.nlmsg_seq = family;
	msg.req.sdiag_family = family;
	msg.req.sdiag_protocol = IPPROTO_TCP;
	msg.req.idiag_states = states;

	struct sockaddr_nl nl = { .nl_family = AF_NETLINK };
	if (sendto(fd, &msg, sizeof msg, 0, (struct sockaddr *)&nl, sizeof nl) < 0) {
		perror("floor: sendto");
		return -1;
	}
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("floor: recv");
			return -1;
		}
		struct nlmsghdr *h = (struct nlmsghdr *)buf;
		for (; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_DONE)
				return 0;
			if (h->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(h);
				fprintf(stderr, "floor: netlink error %d (family %d)\n", e->error, family);
				return -1;
			}
			struct inet_diag_msg *d = NLMSG_DATA(h);
			counts[d->idiag_state]++;
		}
	}
}

int main(int argc, char **argv)
{
	unsigned states = 0xffe; /* bits 1..11: every TCP state */
	const char *families = "46";
	if (argc > 1)
		states = (unsigned)strtoul(argv[1], NULL, 16);
	if (argc > 2)
		families = argv[2];

	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0) {
		perror("floor: socket");
		return 1;
	}
	if (strchr(families, '4') && dump(fd, AF_INET, states) < 0)
		return 1;
	if (strchr(families, '6') && dump(fd, AF_INET6, states) < 0)
		return 1;

	unsigned long total = 0;
	for (unsigned i = 0; i < 256; i++) {
		if (!counts[i])
			continue;
		total += counts[i];
		printf("%s %lu\n", i < NSTATES ? names[i] : "?", counts[i]);
	}
	printf("TOTAL %lu\n", total);
	return 0;
}
