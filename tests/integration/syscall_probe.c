/* syscall_probe: call one raw syscall and say how it ended, for the seccomp tests.
 *
 *   syscall_probe NAME [ARG...]      prints "ok" or the errno's name (EPERM, ENOSYS, ...)
 *   syscall_probe NUMBER [ARG...]    the same for a raw syscall number (one past the table, say)
 *
 * ARGs are integers (0x... allowed), "self" (this process's pid) or a path (starts with "/",
 * passed as a pointer to the string). The calls are chosen so that
 * the kernel itself lets them through when seccomp does (zero-length process_vm_readv on self,
 * kcmp of self with self, clone3 with a NULL argument answers EINVAL): an EPERM or ENOSYS
 * therefore comes from the filter. Built static by the test (cc -static), so it runs in busybox.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static const struct {
    const char *name;
    long nr;
} calls[] = {
    {"bpf", SYS_bpf},
    {"clone3", SYS_clone3},
    {"kcmp", SYS_kcmp},
    {"keyctl", SYS_keyctl},
    {"mkdir", SYS_mkdir},
    {"personality", SYS_personality},
    {"pidfd_getfd", SYS_pidfd_getfd},
    {"process_vm_readv", SYS_process_vm_readv},
    {"setns", SYS_setns},
    {"socket", SYS_socket},
    {"unshare", SYS_unshare},
};

int main(int argc, char **argv) {
    long args[6] = {0};
    long nr = -1;
    if (argc < 2 || argc > 8) {
        fprintf(stderr, "usage: %s NAME [ARG...]\n", argv[0]);
        return 2;
    }
    for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++)
        if (strcmp(calls[i].name, argv[1]) == 0)
            nr = calls[i].nr;
    if (nr < 0 && argv[1][0] >= '0' && argv[1][0] <= '9')
        nr = strtol(argv[1], NULL, 0);
    if (nr < 0) {
        fprintf(stderr, "%s: unknown syscall %s\n", argv[0], argv[1]);
        return 2;
    }
    for (int i = 2; i < argc; i++)
        args[i - 2] = argv[i][0] == '/' ? (long)argv[i]
                      : strcmp(argv[i], "self") == 0 ? (long)getpid()
                                                      : strtol(argv[i], NULL, 0);
    long rc = syscall(nr, args[0], args[1], args[2], args[3], args[4], args[5]);
    if (rc < 0)
        printf("%s\n", strerrorname_np(errno));
    else
        printf("ok\n");
    return 0;
}
