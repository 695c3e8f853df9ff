// A storm of short-lived processes with sockets, for sockmedic's tests of a process
// scan racing with exits (crates/sockmedic/tests/procs.rs).
//
// Usage: storm WORKERS     (run it inside a test network namespace)
//
// It listens on 127.0.0.1 (an ephemeral port; an accept thread takes and drops every
// connection), prints "ready PORT", then WORKERS threads fork children as fast as
// they can, each waiting for its child:
//   - a child that connects to the listener, opens a UDP socket and a socketpair,
//     and exits (the connection is reset: no TIME-WAIT pile-up);
//   - a child that opens 200 TCP sockets it never uses and exits;
//   - a child whose thread-group leader exits first (SYS_exit: a zombie leader)
//     while a second thread holds sockets for a moment, then exits;
//   - a child that opens and closes sockets in a loop (fd numbers reused) for a
//     few milliseconds;
// and one more thread makes, one after the other (nearly always one alive), a child
// that unshares its network namespace, opens a listener and a few sockets there,
// and exits after 20 to 200 ms: a namespace found through a process that may be gone
// (with its namespace) by the time it is opened, as when containers come and go.
// stdin: a line "count" prints how many children were created so far; EOF ends it.

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in target;
static atomic_long created;
static atomic_int stop;

static void *acceptor(void *arg) {
    int l = *(int *)arg;
    for (;;) {
        int c = accept(l, NULL, NULL);
        if (c >= 0)
            close(c);
    }
    return NULL;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void reset_close(int s) {
    struct linger lg = {1, 0};
    setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(s);
}

static void child_connect(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    connect(s, (struct sockaddr *)&target, sizeof target);
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    int pair[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, pair);
    (void)u;
    reset_close(s);
    _exit(0);
}

static void child_many(void) {
    for (int i = 0; i < 200; i++)
        socket(i % 2 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    _exit(0);
}

static void *late_thread(void *arg) {
    (void)arg;
    int s[8];
    for (int i = 0; i < 8; i++)
        s[i] = socket(AF_INET, SOCK_STREAM, 0);
    connect(s[0], (struct sockaddr *)&target, sizeof target);
    sleep_ms(3);
    reset_close(s[0]);
    _exit(0); // exit_group: the whole process goes
    return NULL;
}

static void child_zombie_leader(void) {
    pthread_t t;
    pthread_create(&t, NULL, late_thread, NULL);
    // The leader exits alone; the process lives on in the other thread.
    syscall(SYS_exit, 0);
}

static void child_reuse(void) {
    for (int i = 0; i < 300; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        int u = socket(AF_INET6, SOCK_DGRAM, 0);
        close(s);
        close(u);
    }
    _exit(0);
}

static void child_own_netns(long n) {
    if (unshare(CLONE_NEWNET) != 0)
        _exit(1);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(8000)};
    bind(l, (struct sockaddr *)&a, sizeof a);
    listen(l, 16);
    for (int i = 0; i < 4; i++)
        socket(AF_INET6, SOCK_STREAM, 0);
    sleep_ms(20 + (int)(n * 37 % 180));
    _exit(0);
}

static void *netns_worker(void *arg) {
    (void)arg;
    long n = 0;
    while (!atomic_load(&stop)) {
        pid_t p = fork();
        if (p == 0)
            child_own_netns(n);
        n++;
        if (p > 0) {
            atomic_fetch_add(&created, 1);
            waitpid(p, NULL, 0);
        }
        sleep_ms(10);
    }
    return NULL;
}

static void *worker(void *arg) {
    long n = (long)arg;
    while (!atomic_load(&stop)) {
        pid_t p = fork();
        if (p == 0) {
            switch (n++ % 4) {
            case 0: child_connect(); break;
            case 1: child_many(); break;
            case 2: child_zombie_leader(); break;
            default: child_reuse(); break;
            }
            _exit(0);
        }
        if (p < 0) {
            sleep_ms(5);
            continue;
        }
        n++;
        atomic_fetch_add(&created, 1);
        waitpid(p, NULL, 0);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int workers = argc > 1 ? atoi(argv[1]) : 2;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 4096)) {
        perror("storm: listen");
        return 2;
    }
    socklen_t len = sizeof target;
    getsockname(l, (struct sockaddr *)&target, &len);
    pthread_t t;
    pthread_create(&t, NULL, acceptor, &l);
    pthread_create(&t, NULL, netns_worker, NULL);
    for (long i = 0; i < workers; i++)
        pthread_create(&t, NULL, worker, (void *)i);
    printf("ready %d\n", ntohs(target.sin_port));
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "count", 5) == 0) {
            printf("%ld\n", atomic_load(&created));
            fflush(stdout);
        }
    }
    atomic_store(&stop, 1);
    _exit(0);
}
