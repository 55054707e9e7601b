/* cve_probe: what a process in a container can reach of the host, for the runc CVE tests.
 *
 *   cve_probe fds
 *       this process's open descriptors (but the one reading the list): "N TARGET" per line,
 *       and its cwd: "cwd TARGET" (CVE-2024-21626: a host directory leaked into the container)
 *   cve_probe exe-watch SECONDS
 *       for SECONDS, watch every other process of this PID namespace as it appears: open its
 *       /proc/PID/exe (O_PATH), try to open that for writing at once and again once the process
 *       is gone (CVE-2019-5736: overwriting the host binary that ran the container's init or an
 *       exec). One line per process whose exe could be opened:
 *           "PID FOREIGN NOW LATER TARGET"
 *       FOREIGN is 1 when the binary is not on the container's own root file system; NOW/LATER
 *       are "ok" (opened for writing: closed again at once, nothing is ever written) or the
 *       errno's name. Processes whose exe cannot be opened at all are not listed.
 *
 * Built static by the test (cc -static), so it runs in busybox.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_SEEN 4096

static struct {
    int pid, fd, foreign;
    char now[32], later[32], target[512];
} seen[MAX_SEEN];
static int nseen;

static const char *try_write(int fd, char *out, size_t len) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int w = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (w >= 0) {
        close(w);
        snprintf(out, len, "ok");
    } else {
        snprintf(out, len, "%s", strerrorname_np(errno));
    }
    return out;
}

static int known(int pid) {
    for (int i = 0; i < nseen; i++)
        if (seen[i].pid == pid)
            return 1;
    return 0;
}

static int exe_watch(int seconds) {
    struct stat root;
    if (stat("/", &root) != 0)
        return 1;
    time_t end = time(NULL) + seconds;
    int self = getpid();
    while (time(NULL) < end && nseen < MAX_SEEN) {
        DIR *d = opendir("/proc");
        if (d == NULL)
            return 1;
        struct dirent *e;
        while ((e = readdir(d)) != NULL && nseen < MAX_SEEN) {
            int pid = atoi(e->d_name);
            if (pid <= 0 || pid == self || known(pid))
                continue;
            char path[64];
            snprintf(path, sizeof path, "/proc/%d/exe", pid);
            int fd = open(path, O_PATH | O_CLOEXEC);
            if (fd < 0)
                continue; /* not dumpable (still setting up) or gone: look again next round */
            struct stat st;
            fstat(fd, &st);
            seen[nseen].pid = pid;
            seen[nseen].fd = fd;
            seen[nseen].foreign = st.st_dev != root.st_dev;
            ssize_t n = readlink(path, seen[nseen].target, sizeof seen[nseen].target - 1);
            seen[nseen].target[n > 0 ? n : 0] = 0;
            try_write(fd, seen[nseen].now, sizeof seen[nseen].now);
            nseen++;
        }
        closedir(d);
        for (int i = 0; i < nseen; i++)
            if (!seen[i].later[0] && kill(seen[i].pid, 0) != 0 && errno == ESRCH)
                try_write(seen[i].fd, seen[i].later, sizeof seen[i].later);
    }
    for (int i = 0; i < nseen; i++) {
        if (!seen[i].later[0])
            snprintf(seen[i].later, sizeof seen[i].later, "running");
        printf("%d %d %s %s %s\n", seen[i].pid, seen[i].foreign, seen[i].now, seen[i].later, seen[i].target);
    }
    return 0;
}

static int fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return 1;
    int own = dirfd(d);
    struct dirent *e;
    char path[300], target[512];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == own)
            continue;
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(path, target, sizeof target - 1);
        target[n > 0 ? n : 0] = 0;
        printf("%s %s\n", e->d_name, target);
    }
    closedir(d);
    char cwd[512];
    printf("cwd %s\n", getcwd(cwd, sizeof cwd) ? cwd : strerrorname_np(errno));
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "fds") == 0)
        return fds();
    if (argc == 3 && strcmp(argv[1], "exe-watch") == 0)
        return exe_watch(atoi(argv[2]));
    fprintf(stderr, "usage: %s fds | exe-watch SECONDS\n", argv[0]);
    return 2;
}
