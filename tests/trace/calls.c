/* System calls in known numbers, for osml trace's exact-count tests
 * (crates/cli/tests/trace.rs compiles it with cc).
 *
 *   calls getppid N         N getppid
 *   calls openat N          N openat of "/" (each closed)
 *   calls thread N          N getppid in a second thread, joined
 *   calls fork N            N getppid in a forked child (which first sleeps 300 ms so a
 *                           sampler sees it), waited for
 *   calls wait FILE N       polls for FILE every 10 ms, then N getppid
 *   calls signal            a read on an empty pipe interrupted by SIGALRM (no SA_RESTART),
 *                           twice, then a write and a read that succeed
 *
 * getppid goes through syscall(2) so that no C library can answer it from a cache. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static void getppids(long n) {
    for (long i = 0; i < n; i++) syscall(SYS_getppid);
}

static void *in_thread(void *arg) {
    getppids(*(long *)arg);
    return NULL;
}

static void on_alarm(int sig) { (void)sig; }

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *mode = argv[1];
    if (!strcmp(mode, "getppid") && argc == 3) {
        getppids(atol(argv[2]));
    } else if (!strcmp(mode, "openat") && argc == 3) {
        for (long i = 0, n = atol(argv[2]); i < n; i++) close(open("/", O_RDONLY | O_DIRECTORY));
    } else if (!strcmp(mode, "thread") && argc == 3) {
        long n = atol(argv[2]);
        pthread_t t;
        if (pthread_create(&t, NULL, in_thread, &n)) return 1;
        pthread_join(t, NULL);
    } else if (!strcmp(mode, "fork") && argc == 3) {
        pid_t pid = fork();
        if (pid < 0) return 1;
        if (pid == 0) {
            usleep(300000);
            getppids(atol(argv[2]));
            _exit(0);
        }
        int status;
        waitpid(pid, &status, 0);
    } else if (!strcmp(mode, "wait") && argc == 4) {
        while (access(argv[2], F_OK) != 0) usleep(10000);
        getppids(atol(argv[3]));
    } else if (!strcmp(mode, "signal")) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_alarm;
        sigaction(SIGALRM, &sa, NULL);
        int p[2];
        if (pipe(p)) return 1;
        char c = 'x';
        for (int i = 0; i < 2; i++) {
            struct itimerval it = {{0, 0}, {0, 50000}};
            setitimer(ITIMER_REAL, &it, NULL);
            if (read(p[0], &c, 1) != -1) return 1; /* interrupted: EINTR */
        }
        if (write(p[1], &c, 1) != 1 || read(p[0], &c, 1) != 1) return 1;
    } else {
        return 2;
    }
    return 0;
}
