/* reaper CMD...: become a child subreaper, run CMD, reap every child and orphan at once (a prompt
 * init for the peers' daemonized processes); exit with CMD's status once no child is left. */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    pid_t main_pid = fork();
    if (main_pid < 0) return 1;
    if (main_pid == 0) { execvp(argv[1], argv + 1); _exit(127); }
    int code = 0, st;
    for (;;) {
        pid_t p = waitpid(-1, &st, 0);
        if (p < 0) { if (errno == EINTR) continue; break; }
        if (p == main_pid) code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    return code;
}
