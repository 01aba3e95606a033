/* Benchmark probe: announces "<tag> <pid> <CLOCK_MONOTONIC ns>" on a FIFO, then behaves per mode.
 *   probe FIFO TAG              announce, then wait for a signal (idle daemon)
 *   probe FIFO TAG crash        announce, then exit 3 at once (crash loop)
 *   probe FIFO TAG once         announce, then exit 0 (self-timing)
 *   probe FIFO TAG smart PIDF   fork; parent exits 0; child setsid, writes PIDF (tmp+rename), announces, waits */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void announce(const char *fifo, const char *tag) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char buf[256];
    int n = snprintf(buf, sizeof buf, "%s %d %lld\n", tag, (int)getpid(),
                     (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
    int fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) fd = open(fifo, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd >= 0) { if (write(fd, buf, n) < 0) {} close(fd); }
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    const char *mode = argc > 3 ? argv[3] : "idle";
    if (!strcmp(mode, "smart") && argc > 4) {
        pid_t p = fork();
        if (p < 0) return 1;
        if (p > 0) _exit(0);
        setsid();
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp%d", argv[4], (int)getpid());
        FILE *f = fopen(tmp, "w");
        if (!f) return 1;
        fprintf(f, "%d\n", (int)getpid());
        fclose(f);
        rename(tmp, argv[4]);
    }
    announce(argv[1], argv[2]);
    if (!strcmp(mode, "crash")) _exit(3);
    if (!strcmp(mode, "once")) _exit(0);
    for (;;) pause();
}
