/* Plain C reference loops for `osml bench` validation (benchmarks/os_tools.py):
 *   os_reference syscall   -> ns per syscall(SYS_getppid), median of 9 runs of 2M calls
 *   os_reference syscall-raw -> the same with an inline `syscall` instruction (x86-64 only)
 *   os_reference memcpy    -> GB/s of memcpy over 256 MiB, median of 9 runs
 * Built by os_tools.py with `cc -O2`; prints one number. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    double s[9];
    if (argc == 2 && strcmp(argv[1], "syscall") == 0) {
        const long n = 2000000;
        for (int r = 0; r < 9; r++) {
            double t = now();
            for (long i = 0; i < n; i++) syscall(SYS_getppid);
            s[r] = (now() - t) / n * 1e9;
        }
#if defined(__x86_64__)
    } else if (argc == 2 && strcmp(argv[1], "syscall-raw") == 0) {
        const long n = 2000000;
        for (int r = 0; r < 9; r++) {
            double t = now();
            for (long i = 0; i < n; i++) {
                long ret;
                __asm__ volatile("syscall" : "=a"(ret) : "a"((long)SYS_getppid) : "rcx", "r11", "memory");
            }
            s[r] = (now() - t) / n * 1e9;
        }
#endif
    } else if (argc == 2 && strcmp(argv[1], "memcpy") == 0) {
        const size_t len = 256u << 20;
        char *a = malloc(len), *b = malloc(len);
        if (!a || !b) return 2;
        memset(a, 1, len);
        memset(b, 2, len);
        for (int r = 0; r < 9; r++) {
            double t = now();
            memcpy(b, a, len);
            __asm__ volatile("" : : "r"(b) : "memory");
            s[r] = len / (now() - t) / 1e9;
        }
    } else {
        fprintf(stderr, "usage: os_reference syscall|syscall-raw|memcpy\n");
        return 2;
    }
    qsort(s, 9, sizeof s[0], cmp);
    printf("%.4f\n", s[4]);
    return 0;
}
