/*
 * berth-init: the init that `docker run --init` puts at PID 1 (as /sbin/docker-init).
 *
 * It runs the command as its only child, forwards every signal it can catch to that child,
 * reaps every process re-parented to it (zombies a shell or a daemon leaves behind), and exits
 * as the child did: its exit code, or 128 + the signal that killed it. That is what tini does
 * for Docker; this is berth's own, built statically by scripts/setup.sh:
 *
 *     berth-init [--] COMMAND [ARG...]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* Signals the kernel sends for a fault of this very process must not be blocked; the ones a
 * terminal sends to the foreground job are not ours to forward (tini's list). */
static const int kept[] = {SIGFPE, SIGILL, SIGSEGV, SIGBUS, SIGABRT, SIGTRAP, SIGSYS, SIGTTIN, SIGTTOU};

int main(int argc, char **argv) {
    int first = 1;
    if (argc > 1 && strcmp(argv[1], "--") == 0)
        first = 2;
    if (first >= argc) {
        fprintf(stderr, "berth-init: usage: berth-init [--] COMMAND [ARG...]\n");
        return 2;
    }
    sigset_t wanted, old;
    sigfillset(&wanted);
    for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
        sigdelset(&wanted, kept[i]);
    /* Block before the fork: a signal that arrives meanwhile waits for sigwaitinfo below. */
    if (sigprocmask(SIG_BLOCK, &wanted, &old) != 0) {
        perror("berth-init: sigprocmask");
        return 1;
    }
    pid_t child = fork();
    if (child < 0) {
        perror("berth-init: fork");
        return 1;
    }
    if (child == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        execvp(argv[first], &argv[first]);
        int err = errno;
        fprintf(stderr, "berth-init: exec %s: %s\n", argv[first], strerror(err));
        _exit(err == ENOENT ? 127 : 126);
    }
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&wanted, &info);
        if (sig < 0) {
            if (errno == EINTR)
                continue;
            perror("berth-init: sigwaitinfo");
            return 1;
        }
        if (sig != SIGCHLD) {
            kill(child, sig); /* forwarded; an error only means the child is gone already */
            continue;
        }
        for (;;) {
            int status;
            pid_t pid = waitpid(-1, &status, WNOHANG);
            if (pid <= 0)
                break;
            if (pid == child) {
                if (WIFEXITED(status))
                    return WEXITSTATUS(status);
                if (WIFSIGNALED(status))
                    return 128 + WTERMSIG(status);
                return 1;
            }
        }
    }
}
